"""`crossnet eval` end to end on a tiny trained checkpoint: metrics, the HTML report, the feature cache."""

import json
import os
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from crossnet_dist.training.loop import Trainer
from tests.helpers import REPO, tiny_batches, tiny_config, write_tiny_dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A CrossNet trained for 6 steps (training checkpoint, serving export, metrics.jsonl) and its data."""
    root = tmp_path_factory.mktemp("eval")
    data = write_tiny_dataset(root / "data", n_train=4, n_test=3, size=36)
    cfg = tiny_config(root, "train.max_steps=6", "train.log_every=2", f"data.root={data}")
    trainer = Trainer(cfg)
    trainer.fit(tiny_batches(3))
    return root, data, trainer.out_dir


class ImageSources(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def crossnet_eval(*args: str) -> subprocess.CompletedProcess:
    """The CLI on one intra-op thread, as the in-process evaluations below: the feature cache is keyed by
    the translated pixels, and another thread count may round a pixel the other way."""
    proc = subprocess.run([sys.executable, "-m", "crossnet_dist", "eval", *args], cwd=REPO,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, f"crossnet eval failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def evaluated(trained):
    """`crossnet eval` run once on the training checkpoint: (report folder, cache folder, stdout)."""
    root, data, run = trained
    out, cache = root / "report", root / "cache"
    proc = crossnet_eval("--checkpoint", str(run / "checkpoints" / "step_00000006.pt"), "--data", str(data),
                         "--out", str(out), "--cache-dir", str(cache), "--samples", "2")
    return out, cache, proc.stdout


@pytest.mark.timeout(180)
def test_eval_writes_metrics_and_a_report_whose_images_all_exist(evaluated):
    out, _, stdout = evaluated
    assert f"report: {out / 'index.html'}" in stdout
    result = json.loads((out / "metrics.json").read_text())
    metrics = result["metrics"]
    for key in ("fd_efflite0_a2b", "fd_efflite0_b2a", "kd_efflite0_a2b", "cycle_l1_aba", "cycle_l1_bab",
                "cross_identity_l1_a", "cross_identity_l1_b", "fd_efflite0_a2b_identity_baseline"):
        assert isinstance(metrics[key], float), key
    assert metrics["fd_efflite0_a2b"] > 0 and 0 < metrics["cycle_l1"] < 2
    assert not any(k.startswith(("fid", "kid")) for k in metrics)
    assert "Inception" in result["skipped_metrics"]["fid"]
    assert not any(k.startswith("paired") for k in metrics)  # a_000.png / b_000.png: no pairs
    assert "no pairs" in result["skipped_metrics"]["paired_l1"]
    assert result["images"] == {"a": 3, "b": 3}
    assert result["feature_cache"]["misses"] == 4  # real A, real B, and the two translated sets

    parser = ImageSources()
    parser.feed((out / "index.html").read_text())
    assert "loss_curves.png" in parser.sources  # the run folder has a metrics.jsonl
    assert len(parser.sources) == 1 + 2 * 2 * 4  # curves + 2 directions x 2 rows x 4 columns
    for src in parser.sources:
        assert (out / src).is_file(), src


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("one_torch_thread")
def test_second_evaluation_hits_the_feature_cache(trained, evaluated):
    from crossnet_dist.evaluation import run_evaluation

    root, data, run = trained
    _, cache, _ = evaluated
    # generator.pt holds the same weights as the step checkpoint: same translations, same pixels.
    again = run_evaluation(run / "generator.pt", str(data), eval_cfg={"cache_dir": str(cache), "metrics": ["efflite0"]})
    assert again.info["feature_cache"] == {"dir": str(cache), "hits": 4, "misses": 0}
    first = json.loads((evaluated[0] / "metrics.json").read_text())["metrics"]
    assert again.metrics["fd_efflite0"] == pytest.approx(first["fd_efflite0"])
    # A serving checkpoint has no translators: the cross-identity metric is skipped, and says why.
    cycle_only = run_evaluation(run / "generator.pt", str(data), eval_cfg={"cache_dir": None, "metrics": ["cycle"]})
    assert "serving checkpoint" in cycle_only.info["skipped_metrics"]["cross_identity_l1"]


@pytest.mark.timeout(60)
def test_evaluate_api_returns_floats_for_a_tune_objective(trained):
    from crossnet_dist.evaluation import evaluate

    root, data, run = trained
    scores = evaluate(run / "generator.pt", str(data), metric="cycle_l1", cache_dir=None)
    assert set(scores) == {"cycle_l1", "cycle_l1_aba", "cycle_l1_bab"}
    assert all(isinstance(v, float) for v in scores.values())


def test_a_missing_split_names_the_folder_or_the_command_that_makes_it(trained, tmp_path, capsys):
    from crossnet_dist.cli import main

    root, data, run = trained
    assert main(["eval", "--checkpoint", str(run / "generator.pt"), "--data", str(data), "--split", "val",
                 "--metrics", "cycle"]) == 2
    assert f"has no validation split (splits.json); make one with `crossnet data split {data}`" in capsys.readouterr().err
    (tmp_path / "no-test" / "trainA").mkdir(parents=True)
    assert main(["eval", "--checkpoint", str(run / "generator.pt"), "--data", str(tmp_path / "no-test"),
                 "--metrics", "cycle"]) == 2
    assert "no-test/testA: no images found" in capsys.readouterr().err


@pytest.mark.timeout(120)
def test_a_paired_split_gets_paired_metrics_beside_doing_nothing_and_a_truth_column(trained, tmp_path, capsys):
    import shutil

    from crossnet_dist.cli import main

    _, data, run = trained
    paired = tmp_path / "paired"
    shutil.copytree(data, paired)
    for i, path in enumerate(sorted((paired / "testB").iterdir())):  # testB/b_00i.png -> testB/a_00i.png
        path.rename(path.with_name(f"a_{i:03d}.png"))
    out = tmp_path / "report"
    assert main(["eval", "--checkpoint", str(run / "generator.pt"), "--data", str(paired), "--out", str(out),
                 "--metrics", "paired", "--samples", "2", "--no-cache"]) == 0
    printed = capsys.readouterr().out
    assert "paired a2b: L1" in printed and "do-nothing" in printed
    result = json.loads((out / "metrics.json").read_text())
    m = result["metrics"]
    assert result["pairs"] == {"a2b": 3, "b2a": 3}
    for d in ("a2b", "b2a"):
        assert m[f"paired_l1_{d}_ratio"] == pytest.approx(m[f"paired_l1_{d}"] / m[f"paired_l1_{d}_identity_baseline"])
        assert -1 <= m[f"paired_ssim_{d}"] <= 1
    # doing nothing is the same comparison in both directions (input vs its pair)
    assert m["paired_l1_a2b_identity_baseline"] == pytest.approx(m["paired_l1_b2a_identity_baseline"])
    page = (out / "index.html").read_text()
    assert "Against the true counterpart" in page and "<th>truth</th>" in page
    parser = ImageSources()
    parser.feed(page)
    truths = [src for src in parser.sources if src.endswith("_truth.png")]
    assert len(truths) == 2 * 2 and all((out / src).is_file() for src in truths)
