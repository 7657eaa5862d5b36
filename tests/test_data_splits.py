"""The validation split: a manifest at the data root that training skips and selection reads;
testA/ testB/ (what results are reported on) are never read by either."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crossnet_dist.data import ImageFolderStream, UnpairedImageStream, build_train_loader
from crossnet_dist.data.errors import DatasetError
from crossnet_dist.data.prepare import make_val_split, write_items
from crossnet_dist.data.splits import MANIFEST, NoValidationSplitError, choose_val_names
from crossnet_dist.evaluation import evaluate
from crossnet_dist.evaluation.split_images import read_domain
from crossnet_dist.storage import StorageError
from tests.helpers import tiny_config
from tests.s3_proxy import FaultProxy
from tests.test_data_stream import solid_png

pytestmark = pytest.mark.timeout(120)


def paired_items(n_train: int = 20, n_test: int = 4, unpaired_a: int = 0):
    """The same names in both domains (pairs), plus `unpaired_a` names only domain A has."""
    for i in range(n_train):
        yield f"trainA/{i:03d}.png", solid_png(i, "A")
        yield f"trainB/{i:03d}.png", solid_png(i, "B")
    for i in range(unpaired_a):
        yield f"trainA/only_a_{i:03d}.png", solid_png(i, "A")
    for i in range(n_test):
        yield f"testA/t{i:03d}.png", solid_png(i, "A")
        yield f"testB/t{i:03d}.png", solid_png(i, "B")


def names(keys, folder: str) -> list[str]:
    return [key.split(f"/{folder}/", 1)[1] for key in keys]


def test_every_tenth_name_of_both_domains_together_is_chosen_once():
    a = [f"{i:03d}.png" for i in range(25)]
    b = [f"{i:03d}.png" for i in range(20)] + ["zz_b.png"]
    assert choose_val_names(a, b) == ["000.png", "010.png", "020.png"]
    assert choose_val_names(["x.png"], ["y.png"], every=1) == ["x.png", "y.png"]


def test_split_command_makes_a_paired_val_split_that_training_never_reads(tmp_path):
    root = tmp_path / "mine"
    write_items(paired_items(unpaired_a=3), str(root))
    before = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    done = subprocess.run([sys.executable, "-m", "crossnet_dist", "data", "split", str(root)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "held out of training" in done.stdout and "no image was moved" in done.stdout
    after = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert after == sorted([*before, MANIFEST])  # nothing moved or rewritten, one file added
    val = json.loads((root / MANIFEST).read_text())["val"]
    assert val == ["000.png", "010.png", "only_a_000.png"]  # every 10th of the 23 names together

    train = UnpairedImageStream(str(root), image_size=8, load_size=8)
    trained = set(names(train.keys_a, "trainA")) | set(names(train.keys_b, "trainB"))
    assert not set(val) & trained
    assert len(train.keys_a) == 20 and len(train.keys_b) == 18  # 23 - 3 and 20 - 2
    held_out = ImageFolderStream(str(root), image_size=8, split="val")
    assert names(held_out.keys["a"], "trainA") == val and names(held_out.keys["b"], "trainB") == ["000.png", "010.png"]
    loader = build_train_loader(tiny_config(None, f"data.root={root}", "data.load_size=32").data, 32, seed=0)
    loader.dataset.set_epoch(0)
    assert sum(len(batch["a"]) for batch in loader) == 20  # the whole train split, val excluded


def test_a_second_split_keeps_the_first_unless_forced(tmp_path):
    root = tmp_path / "mine"
    write_items(paired_items(), str(root))
    assert make_val_split(str(root))["written"]
    (root / MANIFEST).write_text(json.dumps({"format": "crossnet-dist/splits", "version": 1, "val": ["005.png"]}))
    kept = make_val_split(str(root))
    assert not kept["written"] and kept["valA"] == 1 and kept["pairs"] == 1
    assert make_val_split(str(root), force=True)["valA"] == 2


def test_val_on_a_root_without_a_split_fails_in_one_line_naming_the_command(tmp_path):
    root = tmp_path / "mine"
    write_items(paired_items(), str(root))
    with pytest.raises(NoValidationSplitError, match=rf"crossnet data split {root}") as err:
        ImageFolderStream(str(root), image_size=8, split="val")
    assert "\n" not in str(err.value)
    with pytest.raises(StorageError, match="crossnet data split"):
        read_domain(str(root), "val", "a", 8)
    assert len(UnpairedImageStream(str(root), image_size=8, load_size=8).keys_a) == 20  # train: every image


def test_a_damaged_manifest_is_refused_naming_it(tmp_path):
    root = tmp_path / "mine"
    write_items(paired_items(), str(root))
    (root / MANIFEST).write_text("{not json")
    with pytest.raises(DatasetError, match=rf"{MANIFEST}: unreadable split manifest.*--force"):
        UnpairedImageStream(str(root), image_size=8, load_size=8)


def test_training_and_selection_on_val_never_read_test_objects(tmp_path, s3_server, s3_prefix):
    """Through a recording proxy in front of the real S3 server: a training run and the scoring
    of its checkpoint on split=val (what checkpoint, recipe and Tune selection do) read trainA/,
    trainB/, the manifest and nothing under testA/ or testB/."""
    from crossnet_dist.training.loop import Trainer

    storage = s3_server.storage_options()
    write_items(paired_items(n_train=20, n_test=4), s3_prefix, storage)
    make_val_split(s3_prefix, storage)
    with FaultProxy(s3_server.endpoint_url, faults=0) as proxy:
        via_proxy = [f"data.storage.{k}={v}" for k, v in {**storage, "endpoint_url": proxy.endpoint_url}.items()]
        cfg = tiny_config(tmp_path, f"data.root={s3_prefix}", "data.load_size=32", "train.max_steps=3",
                          "train.checkpoint_every=3", *via_proxy)
        trainer = Trainer(cfg)
        trainer.fit(build_train_loader(cfg.data, image_size=32, seed=0))
        metrics = evaluate(Path(trainer.out_dir) / "generator.pt", data=cfg.data, split="val",
                           metrics=["paired"], cache_dir=None)
    paths = [path for _, path, _ in proxy.requests]
    queries = [query for _, _, query in proxy.requests]
    assert not [p for p in paths + queries if "testA" in p or "testB" in p]
    assert any(p.endswith("/trainA/000.png") for p in paths)  # a val image, read by the selection
    assert any(p.endswith(f"/{MANIFEST}") for p in paths)
    assert metrics["paired_l1_a2b"] > 0  # scored on the val pairs


def test_tune_split_takes_val_and_refuses_other_names():
    from crossnet_dist.config import ConfigError

    assert tiny_config(None, "tune.split=val").tune.split == "val"
    with pytest.raises(ConfigError, match="tune.split"):
        tiny_config(None, "tune.split=train")
