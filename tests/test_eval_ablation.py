"""The Fig. 5 ablation: its settings, one (setting, seed) run, and the table and chart it writes."""

import csv

import pytest

from crossnet_dist.config import load_config
from crossnet_dist.evaluation.ablation import ABLATION, SETTINGS, run_setting, write_tables
from tests.helpers import TINY_CONFIG, write_tiny_dataset

LATENT = ("cross_translation", "cross_identity", "latent_cycle")


def test_settings_follow_figure_5():
    used = {}
    for name, overrides in SETTINGS.items():
        cfg = load_config(TINY_CONFIG, overrides)
        if cfg.method == "crossnet":
            w = cfg.loss.crossnet
            assert w.gan > 0 and w.identity > 0, name  # GAN and Id in every CrossNet setting
            used[name] = {term for term in LATENT if w[term] > 0}
        else:
            used[name] = cfg.method
    assert used == {
        "GAN+Id": set(),
        "CTC": {"cross_translation"},
        "ZId": {"cross_identity"},
        "CTC+ZId": {"cross_translation", "cross_identity"},
        "ZId+ZCyc": {"cross_identity", "latent_cycle"},
        "CTC+ZId+ZCyc (CrossNet)": set(LATENT),
        "CycleGAN": "cyclegan",
        "UNIT": "unit",
        "XGAN": "xgan",
    }
    assert list(ABLATION) == list(used)[:7]  # Fig. 5's order, GAN+Id first


@pytest.mark.timeout(120)
def test_one_run_trains_evaluates_and_the_tables_summarise_seeds(tmp_path):
    data = write_tiny_dataset(tmp_path / "data", n_train=4, n_test=3, size=36)
    record = run_setting("CTC", 0, str(TINY_CONFIG), str(data), str(tmp_path / "runs"), steps=2,
                         eval_options={"cache_dir": None, "metrics": ["cycle"]})
    assert record["steps"] == 2 and record["checkpoint"].endswith("step_00000002.pt")
    assert (tmp_path / "runs" / "ctc" / "seed0" / "eval_test" / "index.html").is_file()
    assert set(record["metrics"]) >= {"cycle_l1", "cross_identity_l1"}

    fake = [
        {"setting": s, "seed": seed, "steps": 2, "train_s": 1.0,
         "metrics": {"fd_efflite0_a2b": 10.0 + i + seed, "fd_efflite0_b2a": 20.0 + i, "kd_efflite0": 0.1, "cycle_l1": 0.5,
                     "paired_l1_a2b": 0.3, "paired_l1_a2b_identity_baseline": 0.33}}
        for i, s in enumerate(SETTINGS) for seed in (0, 1)
    ]
    paths = write_tables(fake, list(SETTINGS), tmp_path / "table", header="# test")
    markdown = paths["markdown"].read_text()
    for name in SETTINGS:
        assert f"| {name} | 0,1 | 2 |" in markdown
    assert "10.5 ± 0.71" in markdown  # GAN+Id a2b: mean of 10 and 11, sample std
    assert "Doing nothing (the untranslated input scored the same way): paired_l1_a2b 0.33" in markdown
    assert "| CTC+ZId+ZCyc (CrossNet) | 154.4 | 81.2 |" in markdown  # the paper's Fig. 5 beside ours
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [r["setting"] for r in rows] == list(SETTINGS)
    assert float(rows[0]["fd_efflite0_a2b_std"]) == pytest.approx(0.7071, abs=1e-3)
    assert len(list(csv.DictReader(paths["runs_csv"].open()))) == 2 * len(SETTINGS)
    assert paths["chart"].stat().st_size > 1000
