"""Distributed training on a real 2-node Ray cluster (both nodes on 127.0.0.1): DeepSpeed ZeRO 0/2/3
across the nodes, sharded optimiser state, a worker killed mid-run, resume of a stopped run.

One cluster for the module (ray.cluster_utils.Cluster, one logical CPU per node; the two workers
are placed STRICT_SPREAD, one per node). Every run: the tiny CrossNet, 2 workers, 4 steps.
"""

from pathlib import Path

import pytest
import torch

from tests.dist_fixtures import dist_overrides, off_loopback_sockets, use_local_env

use_local_env()

from crossnet_dist.checkpoints.files import SERVING_FORMAT, load_checked  # noqa: E402
from crossnet_dist.checkpoints.translator import load_translator  # noqa: E402
from tests.helpers import tiny_batches, tiny_config  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": True, "dashboard_host": "127.0.0.1",
    })
    c.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    ray.init(address=c.address)
    c.wait_for_nodes()
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory):
    """Runs shared by the tests of this module, made on first use."""
    from crossnet_dist.distributed.driver import train_distributed

    storage = tmp_path_factory.mktemp("storage")
    done = {}

    def get(name: str, *overrides: str, resume=None):
        if name not in done:
            cfg = tiny_config(None, "train.max_steps=4", *dist_overrides(storage, f"dist.run_name={name}",
                              "dist.placement_strategy=STRICT_SPREAD", *overrides))
            done[name] = train_distributed(cfg, resume=resume)
        return done[name]

    get.storage = storage
    return get


def serving_weights(result):
    return load_checked(result.generator_url, SERVING_FORMAT)["translation"]


def flat(weights):
    return torch.cat([weights[m][k].flatten() for m in sorted(weights) for k in sorted(weights[m])])


def prometheus_text(run_name: str, timeout_s: float = 40) -> str:
    """The nodes' Ray metrics endpoints, once rank 0's ray.util.metrics gauges of `run_name` show up."""
    import time
    import urllib.request

    import ray

    ports = [n["MetricsExportPort"] for n in ray.nodes() if n["Alive"]]
    deadline, text = time.time() + timeout_s, ""
    while time.time() < deadline:
        text = "".join(urllib.request.urlopen(f"http://127.0.0.1:{p}/metrics", timeout=5).read().decode() for p in ports)
        if f'run="{run_name}"' in text:
            break
        time.sleep(2)
    return text


def initial_weights():
    from crossnet_dist.methods import build_method
    from crossnet_dist.training.seed import seed_everything

    seed_everything(0)
    return build_method(tiny_config(None)).translation_state_dict()


@pytest.fixture(scope="module")
def zero_runs(runs):
    """ZeRO-0, ZeRO-2 with rank 1 killed (SIGKILL) fetching the batch of step 4, after the checkpoint
    at step 2, and ZeRO-3: the three runs the tests below read."""
    return {
        0: runs("zero0", "dist.zero_stage=0"),
        2: runs("zero2", "dist.zero_stage=2", "dist.loader=tests.dist_fixtures:loader_killing_rank1_at_step4",
                "dist.max_failures=1"),
        3: runs("zero3", "dist.zero_stage=3"),
    }


@pytest.mark.timeout(420)
def test_runs_only_use_the_loopback_interface(zero_runs):
    assert not off_loopback_sockets(), off_loopback_sockets()


@pytest.mark.timeout(420)
@pytest.mark.parametrize("stage", [0, 2, 3])
def test_each_zero_stage_spreads_over_both_nodes_and_trains(zero_runs, stage):
    s = zero_runs[stage].summary
    assert (s["step"], s["world_size"], s["zero_stage"]) == (4, 2, stage)
    assert len(set(s["nodes"])) == 2, f"ZeRO-{stage}: workers not spread over both nodes: {s['nodes']}"
    losses = [h["loss/G_total"] for h in zero_runs[stage].history]
    assert torch.isfinite(torch.tensor(losses)).all() and losses[-1] < losses[0], f"ZeRO-{stage}: {losses}"
    if stage != 2:
        assert [h["step"] for h in zero_runs[stage].history] == [1, 2, 3, 4]


@pytest.mark.timeout(420)
@pytest.mark.parametrize("stage", [0, 2, 3])
def test_each_zero_stage_exports_a_serving_checkpoint_that_translates(zero_runs, stage):
    x = tiny_batches(1)[0]["a"]
    method, cfg = load_translator(zero_runs[stage].generator_url)
    with torch.no_grad():
        out = method.translate(x, "a2b")
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.timeout(420)
def test_rank_0_gauges_reach_the_nodes_prometheus_endpoints(zero_runs):
    text = prometheus_text("zero3")  # ray.util.metrics, exported by the nodes' Ray metrics agents
    assert 'ray_crossnet_train_step{' in text and 'term="cross_identity"' in text, text[-2000:]


@pytest.mark.timeout(420)
def test_prometheus_run_from_the_shipped_config_finds_the_training_series(zero_runs):
    """Ray's service-discovery file (the shipped config's `ray` job) leads Prometheus to both nodes'
    metrics agents, which export rank 0's gauges."""
    from tests.prometheus_server import prometheus

    with prometheus() as query:
        steps = query('ray_crossnet_train_step{run="zero3"}')
        assert steps and float(steps[0]["value"][1]) == 4.0, query.targets()
        assert query('ray_crossnet_train_loss{run="zero3",term="cross_identity"}'), query.targets()


@pytest.mark.timeout(420)
def test_a_killed_worker_restarts_the_group_from_the_last_checkpoint_and_ends_exactly(zero_runs):
    """The group restarted from the step-2 checkpoint, redid step 3 (1 lost) and ended bit for bit
    where ZeRO-0 without a failure ended (fp32 ZeRO-2 on 2 ranks is exact)."""
    zero2 = zero_runs[2]
    assert (zero2.summary["restarts"], zero2.summary["lost_steps"]) == (1, 1), zero2.summary
    assert [h["step"] for h in zero2.history] == [1, 2, 3, 3, 4]
    assert zero2.history[-1]["fault/lost_steps"] == 1.0 and zero2.history[-1]["fault/restarts"] == 1.0
    assert torch.equal(flat(serving_weights(zero2)), flat(serving_weights(zero_runs[0])))


@pytest.mark.timeout(420)
def test_zero_3_ends_within_fp32_rounding_of_zero_0(zero_runs):
    """ZeRO-3 reduces in another order: fp32 rounding, which Adam amplifies on tiny gradients."""
    reference = flat(serving_weights(zero_runs[0]))
    progress = (reference - flat(initial_weights())).norm()
    drift = (flat(serving_weights(zero_runs[3])) - reference).norm() / progress
    assert drift < 0.1, f"ZeRO-3 drifted from ZeRO-0 by {drift:.3f} of the training progress"


@pytest.mark.timeout(420)
@pytest.mark.parametrize("net", ["G", "D"])
def test_zero_2_halves_optimiser_state_and_gradients_and_zero_3_also_parameters(zero_runs, net):
    """Per-rank memory (bytes, rank 0) against ZeRO-0."""
    m0, m2, m3 = (zero_runs[stage].summary["memory"] for stage in (0, 2, 3))
    assert m2[f"mem/{net}_optim_state_bytes"] / m0[f"mem/{net}_optim_state_bytes"] == pytest.approx(0.5, abs=0.02)
    assert m2[f"mem/{net}_grad_bytes"] / m0[f"mem/{net}_grad_bytes"] == pytest.approx(0.5, abs=0.02)
    assert m2[f"mem/{net}_param_bytes"] == m0[f"mem/{net}_param_bytes"]
    assert m3[f"mem/{net}_param_bytes"] / m0[f"mem/{net}_param_bytes"] == pytest.approx(0.5, abs=0.02)
    assert m3[f"mem/{net}_optim_state_bytes"] / m0[f"mem/{net}_optim_state_bytes"] == pytest.approx(0.5, abs=0.02)


@pytest.mark.timeout(420)
def test_the_zero_3_export_equals_the_consolidated_checkpoint(zero_runs):
    """The export gathered the full parameters of the partitioned model."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    from crossnet_dist.distributed.checkpoint import DS_TAG

    zero3 = zero_runs[3]
    full = get_fp32_state_dict_from_zero_checkpoint(f"{zero3.checkpoint_path}/generators", tag=DS_TAG)
    for module, state in serving_weights(zero3).items():
        for key, value in state.items():
            assert torch.equal(full[f"{module}.{key}"], value), f"{module}.{key}"


@pytest.mark.timeout(300)
def test_a_stopped_run_resumed_with_resume_ends_equal_to_an_uninterrupted_run(runs):
    """2 workers, ZeRO-2, stopped mid-epoch (step 3 = epoch 1, batch 1 of 2), then `--resume`d to step 4:
    the weights equal the uninterrupted run's bit for bit (2 workers on CPU are deterministic)."""
    reference = runs("zero0", "dist.zero_stage=0")
    stopped = runs("stopped", "dist.zero_stage=2", "train.max_steps=3")
    assert stopped.step == 3
    resumed = runs("resumed", "dist.zero_stage=2", resume="stopped")
    assert resumed.run_name == "stopped" and resumed.step == 4
    assert [h["step"] for h in resumed.history] == [4]
    assert resumed.summary["lost_steps"] == 0
    assert torch.equal(flat(serving_weights(resumed)), flat(serving_weights(reference)))


@pytest.mark.timeout(300)
def test_a_new_run_started_from_another_runs_checkpoint_continues_it_with_its_own_lr(runs):
    """dist.init_from (what Tune's PBT uses): a new run starts from the stopped run's step-3
    checkpoint. With the same LR it ends equal to the uninterrupted run; with another LR the new
    LR is the one in effect (the checkpoint's optimiser state carries the old one)."""
    reference = runs("zero0", "dist.zero_stage=0")
    stopped = runs("stopped", "dist.zero_stage=2", "train.max_steps=3")
    source = f"{stopped.run_url}/step_00000003"
    before = sorted(p.name for p in (runs.storage / "stopped").glob("step_*"))

    warm = runs("warm", "dist.zero_stage=2", f"dist.init_from={source}")
    assert warm.run_name == "warm" and warm.step == 4 and [h["step"] for h in warm.history] == [4]
    assert torch.equal(flat(serving_weights(warm)), flat(serving_weights(reference)))
    assert sorted(p.name for p in (runs.storage / "warm").glob("step_*")) == ["step_00000004"]

    faster = runs("warm-lr", "dist.zero_stage=2", f"dist.init_from={source}", "optim.lr=1e-3")
    assert faster.step == 4 and faster.metrics["lr/G"] == pytest.approx(1e-3) and faster.metrics["lr/D"] == pytest.approx(1e-3)
    assert not torch.equal(flat(serving_weights(faster)), flat(serving_weights(reference)))
    assert sorted(p.name for p in (runs.storage / "stopped").glob("step_*")) == before  # the source is untouched


def test_init_from_a_missing_checkpoint_names_the_key(tmp_path):
    from crossnet_dist.distributed.checkpoint import start_checkpoint

    with pytest.raises(FileNotFoundError, match="dist.init_from.*no checkpoint folder"):
        start_checkpoint(str(tmp_path / "nope" / "step_00000002"), None)
    assert start_checkpoint("", None) is None


@pytest.mark.timeout(300)
def test_ema_weights_are_exported_and_are_what_tune_scores(runs):
    """train.ema_decay on DeepSpeed ranks: generator.pt holds the averaged weights (not the raw
    DeepSpeed ones), and Tune's checkpoint scoring rebuilds the same averaged translator."""
    import pyarrow.fs as pafs

    from crossnet_dist.distributed.checkpoint import generator_state_from_checkpoint, serving_checkpoint

    run = runs("ema", "dist.zero_stage=2", "train.ema_decay=0.5")
    served = load_checked(run.generator_url, SERVING_FORMAT)
    assert served["ema"] is True
    raw = generator_state_from_checkpoint(Path(run.checkpoint_path))
    averaged = flat(served["translation"])
    assert not torch.equal(averaged, flat({m: {k[len(m) + 1:]: v for k, v in raw.items() if k.startswith(m + ".")}
                                           for m in served["translation"]}))
    cfg = tiny_config(None, "train.ema_decay=0.5")
    rebuilt = serving_checkpoint(
        run.checkpoint_path, pafs.LocalFileSystem(), cfg, run.step, Path(run.checkpoint_path).parent / "scored.pt"
    )
    assert torch.equal(flat(load_checked(rebuilt, SERVING_FORMAT)["translation"]), averaged)
