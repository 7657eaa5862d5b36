"""The benchmark scripts stay runnable, and the scaling model computes what its docstring says.
(No timing is asserted: the figures are ratios printed by `make bench`.)"""

import subprocess
import sys

import pytest

from tests.helpers import REPO

sys.path.insert(0, str(REPO))


def test_scaling_model_ring_costs_by_hand():
    from bench.scaling_model import comm_time, predict

    stats = {"N_G": 100, "N_D": 50, "calls_G": 6, "modules_G": 3, "calls_D": 4, "modules_D": 2}
    bw, alpha, b = 1e9, 1e-5, 2
    assert comm_time(stats, 0, 1, bw, alpha, b) == 0.0
    # ZeRO-0: all-reduce of G and D gradients, 2 (p-1)/p N b / B + 2 collectives x 2 (p-1) alpha
    zero0 = 2 * 0.75 * 150 * 2 / bw + 2 * 2 * 3 * alpha
    assert comm_time(stats, 0, 4, bw, alpha, b) == pytest.approx(zero0)
    assert comm_time(stats, 2, 4, bw, alpha, b) == pytest.approx(zero0)  # reduce-scatter + all-gather
    # ZeRO-3: reduce-scatter + a gather of each module at every call, forward and backward
    vol3 = 0.75 * 150 * 2 + 0.75 * 2 * (2 * 100 * 6 / 3 + 2 * 50 * 4 / 2)
    assert comm_time(stats, 3, 4, bw, alpha, b) == pytest.approx(vol3 / bw + 3 * alpha * (2 + 2 * 10))
    t, eff = predict(stats, 0, 4, 0.01, bw, alpha, b)
    assert t == pytest.approx(0.01 + zero0) and eff == pytest.approx(0.01 / t)
    assert predict(stats, 0, 4, 0.01, bw, alpha, b, overlap=1.0) == (0.01, 1.0)
    effs = [predict(stats, 0, p, 0.01, bw, alpha, b)[1] for p in (2, 8, 64)]
    assert effs == sorted(effs, reverse=True)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_make_bench_in_process_rows_print():
    out = subprocess.run(
        [sys.executable, "bench/run_all.py", "--skip-dist", "--skip-compile", "--skip-loader", "--skip-serve", "--bare-steps", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=220,
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
    """bench/quality.py end to end at a toy budget: a Ray Train run (1 DeepSpeed worker) and the --local
    row, each checkpoint scored against doing nothing on a paired split; table, JSON and plot written."""
    import json

    from tests.helpers import write_tiny_dataset

    data = write_tiny_dataset(tmp_path / "data", n_train=4, n_test=3, size=36)
    for i, path in enumerate(sorted((data / "testB").iterdir())):  # same names in testA/ and testB/: pairs
        path.rename(path.with_name(f"a_{i:03d}.png"))
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "bench/quality.py", "--config", "jobs/configs/tiny.yaml", "--data", str(data), "--out", str(out),
         "--methods", "crossnet", "--steps", "4", "--eval-every", "2", "--workers", "1", "--threads", "1",
         "--set", "train.ema_decay=0.5", "--set", "train.log_every=2", "--eval-raw"],
        cwd=REPO, capture_output=True, text=True, timeout=400,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads((out / "quality.json").read_text())["rows"]
    assert [(r["trainer"], r["step"], r["weights"]) for r in rows] == [
        (t, s, w) for t in ("ray", "local") for s in (2, 4) for w in ("ema", "raw")]
    for r in rows:
        assert r["cpu_s"] > 0 and r["paired_l1_a2b_ratio"] > 0 and -1 <= r["paired_ssim_b2a"] <= 1
    assert rows[1]["cpu_s"] == rows[0]["cpu_s"] < rows[2]["cpu_s"]  # the same checkpoint, then later
    assert "| crossnet | ray | 0 | ema | 4 |" in (out / "quality.md").read_text()
    assert (out / "quality_vs_time.png").stat().st_size > 0
