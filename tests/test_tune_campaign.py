"""Ray Tune campaigns over the loss weights, for real: every trial a Ray Train run (1 worker,
DeepSpeed ZeRO-2, the tiny CrossNet on tiny on-disk photo crops) scored on the held-out test split
at every checkpoint.

One local Ray for the module (2 CPUs on 127.0.0.1, dashboard on: it releases the placement groups
of stopped trials); trial driver 0.01 CPU + 1 worker x 0.5 CPU, one trial at a time (two for PBT). Scored with
cycle_l1 (cheap) instead of the default fd_efflite0. 1 worker per trial: 2 workers work the same
way (tests/test_dist_training.py covers them) at about twice the time per trial.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from tests.dist_fixtures import LOCAL_ENV, use_local_env

use_local_env()

from tests.helpers import REPO, tiny_batches, write_tiny_dataset  # noqa: E402

pytestmark = pytest.mark.slow
TUNE_TINY = REPO / "jobs" / "configs" / "tune_tiny.yaml"
INJECTED = "injected failure: the loader exploded at batch 2"


def exploding_loader(data_cfg, image_size, seed, rank=0, world_size=1, pin_memory=False):
    """The real loader, except that it raises at its second batch (a trial that crashes mid-run)."""
    from crossnet_dist.data import build_train_loader

    inner = build_train_loader(data_cfg, image_size=image_size, seed=seed, rank=rank, world_size=world_size)

    class Exploding:
        dataset = getattr(inner, "dataset", None)
        stats = getattr(inner, "stats", None)

        def __iter__(self):
            for i, batch in enumerate(inner):
                if i == 1:
                    raise RuntimeError(INJECTED)
                yield batch

    return Exploding()


@pytest.fixture(scope="module")
def ray_session():
    import ray

    from crossnet_dist.ray_local import start_local_ray

    ray.shutdown()
    saved = os.environ.get("RAY_API_SERVER_ADDRESS")
    try:
        yield start_local_ray(num_cpus=2, log_to_driver=False)
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("RAY_API_SERVER_ADDRESS", None)
        else:
            os.environ["RAY_API_SERVER_ADDRESS"] = saved


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tune-data"))


def overrides(data, storage, name, *extra):
    return [
        f"data.root={data}", f"dist.storage_path={storage}", f"tune.name={name}", "tune.metric=cycle_l1",
        "tune.time_budget_s=600", *extra,
    ]


def tune_config(*items):
    from crossnet_dist.config import load_config

    return load_config(TUNE_TINY, list(items))


def attempts(campaign: Path, trial_id: str) -> int:
    return len((campaign / "runs" / trial_id / "attempts.log").read_text().splitlines())


@pytest.mark.timeout(240)
def test_asha_campaign_of_four_trials_stops_the_worst_and_points_at_the_best(ray_session, data, tmp_path):
    """4 trials: 2 samples of the five weights x lr in {2e-4, 5e-2}; the lr 5e-2 trials are far worse
    at the first rung (step 2) than the lr 2e-4 trial before them, so ASHA stops them there."""
    from crossnet_dist.checkpoints.translator import load_translator
    from crossnet_dist.tuning.campaign import run_campaign

    # 24 steps: a stopped trial's run must still be training when ASHA's stop reaches it (the driver
    # scores asynchronously; 8 tiny steps could end, and export, before the first rung was scored)
    cfg = tune_config(*overrides(data, tmp_path, "asha", "tune.num_samples=2", "train.max_steps=24",
                                 "tune.space={optim.lr: {type: grid, values: [2.0e-4, 5.0e-2]}}"))
    t0 = time.time()
    result = run_campaign(cfg)
    elapsed = time.time() - t0
    campaign = tmp_path / "asha"
    rows = {r.trial_id: r for r in result.rows}
    assert len(rows) == 4 and not result.count("errored") and not result.count("no report"), result.rows
    stopped = [r for r in rows.values() if r.status == "stopped"]
    assert stopped, f"ASHA stopped no trial: {result.rows}"
    for r in stopped:  # stopped at a rung: never reached the last step, no serving export
        assert r.step < cfg.train.max_steps and r.value is not None
        assert not (campaign / "runs" / r.trial_id / "generator.pt").exists()
    completed = [r for r in rows.values() if r.status == "completed"]
    assert completed and all(r.step == cfg.train.max_steps for r in completed)
    for r in rows.values():
        assert set(r.params) == {"optim.lr", *(f"loss.crossnet.{k}" for k in
                                               ("gan", "identity", "cross_translation", "cross_identity", "latent_cycle"))}
        assert 0 < r.seconds < elapsed

    # the table, the plot and the best pointer
    csv_lines = (campaign / "trials.csv").read_text().splitlines()
    assert csv_lines[0].startswith("trial_id,status,") and "cycle_l1" in csv_lines[0] and len(csv_lines) == 5
    markdown = (campaign / "trials.md").read_text()
    assert sum(line.startswith("| ") for line in markdown.splitlines()) == 5  # header + 4 trials
    assert "(best)" in markdown and "stopped" in markdown
    assert (campaign / "metric_vs_params.png").read_bytes()[:4] == b"\x89PNG"
    best = json.loads((campaign / "best" / "best.json").read_text())
    assert best["trial_id"] == result.best.trial_id and best["metric"] == "cycle_l1"
    assert best["value"] == min(r.value for r in completed)
    assert best["config"]["optim"]["lr"] == best["params"]["optim.lr"]
    assert best["config"]["loss"]["crossnet"]["gan"] == best["params"]["loss.crossnet.gan"]
    assert (campaign / "best" / "generator.pt").read_bytes() == \
        (campaign / "runs" / best["trial_id"] / "generator.pt").read_bytes()
    method, trained_cfg = load_translator(campaign / "best" / "generator.pt")
    assert trained_cfg.optim.lr == best["params"]["optim.lr"]
    x = tiny_batches(1)[0]["a"]
    with torch.no_grad():
        y = method.translate(x, "a2b")
    assert y.shape == x.shape and torch.isfinite(y).all()


@pytest.mark.timeout(300)
def test_pbt_moves_the_worse_trial_onto_the_better_ones_checkpoint_and_values(ray_session, data, tmp_path):
    """PBT over 2 trials running side by side (8 steps, checkpointed every 2, compared at step 4):
    lr is a grid axis {2e-4, 5e-2} (the 5e-2 trial is far worse), the identity weight is explored.
    The worse trial continues from the better one's checkpoint, in a new Train run of its own, with
    the better one's lr and a perturbed identity weight clipped to the searched range.

    Synchronous PBT (the population waits at step 4, then moves its bottom half): asynchronous PBT
    compares a trial only with those that reported before it, so whether it moves anyone depends
    on how the trials' start-up times fall."""
    from crossnet_dist.checkpoints.translator import load_translator
    from crossnet_dist.tuning.campaign import run_campaign

    space = ("tune.space={optim.lr: {type: grid, values: [2.0e-4, 5.0e-2]}, "
             "loss.crossnet.identity: {type: uniform, low: 2.0, high: 4.0}}")
    cfg = tune_config(*overrides(data, tmp_path, "pbt", "tune.scheduler=pbt", "tune.num_samples=1",
                                 "tune.max_concurrent_trials=2", "tune.pbt.quantile_fraction=0.5",
                                 "tune.pbt.resample_probability=0", "tune.pbt.synch=true",
                                 "tune.pbt.perturbation_interval=4", space))
    result = run_campaign(cfg)
    campaign = tmp_path / "pbt"
    assert len(result.rows) == 2 and all(r.status == "completed" for r in result.rows), result.rows
    assert all(r.step == cfg.train.max_steps for r in result.rows)
    moved = [r for r in result.rows if r.lineage]
    assert moved, f"PBT moved no trial: {result.rows}"
    ids = {r.trial_id for r in result.rows}
    for r in moved:
        first = json.loads((campaign / "runs" / r.trial_id / "attempts.log").read_text().splitlines()[0].split(" ", 4)[4])
        assert first["optim.lr"] == 5.0e-2, "the better trial was moved onto the worse one"
        jump = r.lineage[-1]
        assert jump["from_trial"] in ids - {r.trial_id} and jump["step"] < cfg.train.max_steps
        assert r.params["optim.lr"] == 2.0e-4  # the donor's grid value came along
        assert 2.0 <= r.params["loss.crossnet.identity"] <= 4.0
        log = (campaign / "runs" / r.trial_id / "attempts.log").read_text()
        assert f"from {jump['from_trial']} step {jump['step']}" in log
        # the new Train run continues the donor's step count and exported the trial's generator.pt
        assert r.run.startswith(f"{r.trial_id}-from-{jump['from_trial']}-")
        steps = sorted(int(p.name[5:]) for p in (campaign / "runs" / r.run).glob("step_*"))
        assert steps and steps[0] > jump["step"] and steps[-1] == cfg.train.max_steps
        summary = json.loads((campaign / "runs" / r.trial_id / "trial.json").read_text())
        assert summary["run"] == r.run and summary["generator"].endswith(f"runs/{r.run}/generator.pt")
    assert f"(from {moved[0].lineage[-1]['from_trial']}@" in (campaign / "trials.md").read_text()
    best = json.loads((campaign / "best" / "best.json").read_text())
    assert best["trial_id"] == result.best.trial_id
    source = campaign / "runs" / (result.best.run or best["trial_id"]) / "generator.pt"
    assert (campaign / "best" / "generator.pt").read_bytes() == source.read_bytes()
    method, _ = load_translator(campaign / "best" / "generator.pt")
    x = tiny_batches(1)[0]["a"]
    with torch.no_grad():
        assert torch.isfinite(method.translate(x, "a2b")).all()


@pytest.mark.timeout(240)
def test_a_campaign_in_s3_reads_its_data_from_s3_and_serves_its_best_from_s3(ray_session, data, s3_server, s3_prefix):
    """Bucket -> trials -> best pointer, all in a real S3 server (SeaweedFS on 127.0.0.1): the
    images are read from S3 by the workers and the scorer, the Tune state, Train runs, table and
    best pointer are written to S3, and Serve's checkpoint resolver loads the best from there."""
    import s3fs

    from crossnet_dist.checkpoints.source import resolve_checkpoint
    from crossnet_dist.tuning.campaign import run_campaign

    opts = s3_server.storage_options()
    fs = s3fs.S3FileSystem(key=opts["key"], secret=opts["secret"], client_kwargs={"endpoint_url": opts["endpoint_url"]})
    bucket_path = s3_prefix[len("s3://"):]
    fs.put(f"{data}/", f"{bucket_path}/data/", recursive=True)
    storage = [f"data.storage.{k}={v}" for k, v in opts.items()]
    cfg = tune_config(*overrides(f"{s3_prefix}/data", f"{s3_prefix}/runs", "s3-campaign", "tune.scheduler=fifo",
                                 "tune.num_samples=1", "train.max_steps=4", *storage))
    result = run_campaign(cfg)
    assert result.url == f"{s3_prefix}/runs/s3-campaign" and result.best_url == f"{result.url}/best/"
    (row,) = result.rows
    assert row.status == "completed" and row.step == 4 and row.value is not None, row
    stored = fs.ls(f"{bucket_path}/runs/s3-campaign")
    assert {"trials.csv", "trials.md", "metric_vs_params.png", "campaign.yaml", "best", "runs"} <= \
        {p.rsplit("/", 1)[-1] for p in stored}
    assert fs.ls(f"{bucket_path}/runs/s3-campaign/runs/{row.trial_id}/")  # the Train run with its checkpoints
    resolved = resolve_checkpoint(result.best_url, cfg.data.storage)
    from crossnet_dist.checkpoints.translator import load_translator

    assert resolved.url == f"{result.best_url}generator.pt" and resolved.pointer["best"]["trial_id"] == row.trial_id
    method, trained = load_translator(resolved.local_path)
    resolved.discard_copy()
    assert trained.data.root == f"{s3_prefix}/data"
    x = tiny_batches(1)[0]["a"]
    with torch.no_grad():
        assert torch.isfinite(method.translate(x, "a2b")).all()


@pytest.mark.timeout(150)
def test_a_crashing_trial_is_reported_as_errored_and_the_campaign_goes_on(ray_session, data, tmp_path):
    """2 trials over dist.loader: the second one's loader raises at its second batch (in the Train
    worker, mid-run); the campaign still completes the other one and points at it."""
    from crossnet_dist.tuning.campaign import run_campaign

    loaders = "[crossnet_dist.data:build_train_loader, tests.test_tune_campaign:exploding_loader]"
    cfg = tune_config(*overrides(data, tmp_path, "crash", "tune.num_samples=1", "train.max_steps=4",
                                 "tune.scheduler=fifo", f"tune.space={{dist.loader: {{type: grid, values: {loaders}}}}}"))
    result = run_campaign(cfg)
    by_loader = {r.params["dist.loader"]: r for r in result.rows}
    good, bad = by_loader["crossnet_dist.data:build_train_loader"], by_loader["tests.test_tune_campaign:exploding_loader"]
    assert bad.status == "errored" and INJECTED in bad.error, bad
    assert good.status == "completed" and good.step == 4, good
    assert result.best.trial_id == good.trial_id
    assert f"errored: {bad.error}" in (tmp_path / "crash" / "trials.md").read_text()


@pytest.mark.timeout(240)
def test_an_interrupted_campaign_resumes_without_rerunning_finished_trials(ray_session, data, tmp_path):
    """`crossnet tune` (a second driver on the module's Ray) is interrupted (SIGINT, as Ctrl-C) once its
    first trial has finished; `--resume` then runs the others and leaves the finished one alone."""
    from crossnet_dist.tuning.campaign import run_campaign

    items = overrides(data, tmp_path, "resumable", "tune.num_samples=3", "train.max_steps=4", "tune.scheduler=fifo")
    env = {**os.environ, **LOCAL_ENV, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "crossnet_dist", "tune", str(TUNE_TINY), *items,
                             "--address", ray_session], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    campaign = tmp_path / "resumable"
    lines: list[str] = []
    completed = threading.Event()  # Tune's driver has processed a trial's end ("Trial ... completed after")

    def read_output() -> None:
        for line in proc.stdout:
            lines.append(line)
            if " completed after " in line:
                completed.set()

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    try:
        assert completed.wait(150), f"no trial completed; driver exited {proc.poll()}: {''.join(lines[-20:])}"
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        reader.join(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    finished_before = sorted(p.parent.name for p in campaign.glob("runs/*/trial.json"))
    assert finished_before, "Tune reported a trial completed but no trial.json was written"
    assert len(finished_before) < 3, "the campaign ended before it was interrupted"

    cfg = tune_config(*overrides(data, tmp_path, "ignored-on-resume"))
    result = run_campaign(cfg, resume="resumable")
    assert result.name == "resumable" and len(result.rows) == 3, result.rows
    assert all(r.status == "completed" and r.step == 4 for r in result.rows), result.rows
    for trial_id in finished_before:
        assert attempts(campaign, trial_id) == 1, f"finished trial {trial_id} was run again"
    assert result.best is not None and (campaign / "best" / "generator.pt").is_file()
    assert len((campaign / "trials.csv").read_text().splitlines()) == 4
