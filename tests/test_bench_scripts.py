"""The benchmark scripts stay runnable, and the scaling model computes what its docstring says.
(No timing is asserted: the figures are ratios printed by `make bench`.)"""

import subprocess
import sys

import pytest

from tests.helpers import REPO

sys.path.insert(0, str(REPO))


def test_scaling_model_two_level_all_reduce_by_hand():
    from bench.scaling_model import cluster_comm_s, hierarchical_allreduce_s

    net = {"gpus_per_node": 4, "bw_intra": 100.0, "alpha_intra": 1.0, "bw_inter": 10.0, "alpha_inter": 2.0}
    assert hierarchical_allreduce_s(800.0, 1, net) == 0.0
    # one node of 2: a ring, 2 (g-1)/g N b / B + 2 (g-1) alpha
    assert hierarchical_allreduce_s(800.0, 2, net) == pytest.approx(2 * 0.5 * 800 / 100 + 2 * 1.0)
    # 3 nodes of 4: the node ring, then each GPU's quarter on its own NIC over a ring of 3 nodes
    intra = 2 * 0.75 * 800 / 100 + 2 * 3 * 1.0
    inter = 2 * (2 / 3) * (800 / 4) / 10 + 2 * 2 * 2.0
    assert hierarchical_allreduce_s(800.0, 12, net) == pytest.approx(intra + inter)
    stats = {"N_G": 100, "N_D": 50, "calls_G": 6, "modules_G": 3, "calls_D": 4, "modules_D": 2}
    ar = lambda n: hierarchical_allreduce_s(n * 4, 12, net)  # noqa: E731
    assert cluster_comm_s(stats, 0, 12, net, 4, 0.5) == pytest.approx(ar(100) + ar(50) + 2 * 0.5)
    assert cluster_comm_s(stats, 2, 12, net, 4, 0.5) == pytest.approx(ar(100) + ar(50) + 4 * 0.5)  # two calls each
    zero3 = 0.5 * (ar(100) + ar(50)) + 2 * 6 * (0.5 * ar(100 / 3) + 0.5) + 2 * 4 * (0.5 * ar(50 / 2) + 0.5)
    assert cluster_comm_s(stats, 3, 12, net, 4, 0.5) == pytest.approx(zero3)
    assert cluster_comm_s(stats, 0, 1, net, 4, 0.5) == 0.0


def test_the_calibration_model_adds_its_parts_and_leaves_ray_the_idle_core_time():
    from bench.scaling_calibration import predict

    parts = {"train_step_s": 0.100, "part_batch_sync_s": 0.001, "machine_cpu_s": 0.030, "workers_cpu_s": 0.010,
             "step_time_s": 0.105}
    one = {"step_s": 0.105, "parts": parts}
    comm = {"alpha_s": 0.0005, "total_s": 0.010}
    m = predict(one, share=1.2, imbalance=0.004, comm=comm)
    assert m["wait"] == pytest.approx(0.004) and m["allreduce"] == 0.010
    assert m["other"] == pytest.approx((0.105 - 0.100 - 0.001) * 1.2 + 0.001)  # + the batch all-reduce
    f = m["compute"] / m["step"]  # the fixed point: slowed only while the other rank computes too
    assert m["compute"] == pytest.approx(0.100 * (1 + 0.2 * f), rel=1e-6)
    assert m["ray_cores"] == pytest.approx(0.020 / 0.105) and m["ray_stolen"] == 0.0  # fits into the idle time
    assert m["step"] == pytest.approx(m["compute"] + m["wait"] + m["allreduce"] + m["other"])


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_make_bench_in_process_rows_print():
    out = subprocess.run(
        [
            sys.executable,
            "bench/run_all.py",
            "--skip-dist",
            "--skip-compile",
            "--skip-loader",
            "--skip-serve",
            "--bare-steps",
            "2",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=220,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("(")]
    labels = [r.split("|")[0].strip() for r in rows]
    assert any(label.startswith("(b) compute efficiency") for label in labels), out.stdout
    assert any(label.startswith("(opt) metric sync once per window (applied)") for label in labels), out.stdout
    for r in rows:
        float(r.split("|")[3].split()[0])  # every row ends in a ratio


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_quality_bench_trains_ray_and_local_rows_and_scores_each_checkpoint(tmp_path):
    """bench/quality.py end to end at a toy budget: a Ray Train run (1 DeepSpeed worker), the --local
    row and the paired ceiling, each checkpoint scored on the val split against doing nothing, each
    run's best on val scored on the test split; table, JSON and plot written."""
    import json

    from tests.helpers import write_tiny_dataset

    data = write_tiny_dataset(tmp_path / "data", n_train=20, n_test=3, size=36)
    for folder in ("trainB", "testB"):  # the same names in A and B: pairs (val: a_000.png, a_010.png)
        for i, path in enumerate(sorted((data / folder).iterdir())):
            path.rename(path.with_name(f"a_{i:03d}.png"))
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "bench/quality.py", "--config", "jobs/configs/tiny.yaml", "--data", str(data), "--out", str(out),
         "--methods", "crossnet", "--steps", "4", "--eval-every", "2", "--workers", "1", "--threads", "1",
         "--set", "train.ema_decay=0.5", "--set", "train.log_every=2", "--eval-raw"],
        cwd=REPO, capture_output=True, text=True, timeout=400,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (data / "splits.json").is_file()  # the bench made the val split it selects on
    result = json.loads((out / "quality.json").read_text())
    rows, reported = result["rows"], result["reported"]
    assert [(r["trainer"], r["weights"], r["step"]) for r in rows] == [
        (t, w, s) for t, ws in (("ray", ("ema", "raw")), ("local", ("ema", "raw")), ("paired", ("ema",)))
        for w in ws for s in (2, 4)]
    assert {r["split"] for r in rows} == {"val"} and {r["split"] for r in reported} == {"test"}
    assert [(r["trainer"], r["weights"]) for r in reported] == [
        ("ray", "ema"), ("ray", "raw"), ("local", "ema"), ("local", "raw"), ("paired", "ema")]
    for r in rows + reported:
        assert r["cpu_s"] > 0 and r["paired_l1_a2b_ratio"] > 0 and -1 <= r["paired_ssim_b2a"] <= 1
    assert rows[2]["cpu_s"] == rows[0]["cpu_s"] < rows[1]["cpu_s"]  # the same checkpoint, then later
    text = (out / "quality.md").read_text()
    assert "| crossnet | ray | 0 | ema | val | 4 |" in text and "| doing nothing |" in text and "| ceiling | paired |" in text
    assert (out / "quality_vs_time.png").stat().st_size > 0


@pytest.mark.timeout(240)
def test_make_benchs_collective_probe_runs_on_two_spawned_processes():
    """The path `make bench` crashed on: the config crosses a spawn boundary with the standard pickle."""
    from bench.scaling_calibration import allreduce_model, collective_probe
    from crossnet_dist.config import load_config
    from tests.helpers import TINY_CONFIG

    probe = collective_probe(load_config(TINY_CONFIG), repeats=2)
    assert probe["generators/elements"] > probe["discriminators/elements"] > 0
    assert allreduce_model(probe)["total_s"] > 0
