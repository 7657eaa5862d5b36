"""Non-finite losses: stopped with the step and the term named, or skipped and counted; a diverged
model is never checkpointed, exported or served."""

import subprocess
import sys

import pytest
import torch

from crossnet_dist.checkpoints.files import CheckpointError
from crossnet_dist.checkpoints.translator import load_translator, serving_payload
from crossnet_dist.training.checkpoint import list_step_checkpoints
from crossnet_dist.training.divergence import DivergenceError, NonFiniteWatch
from crossnet_dist.training.loop import Trainer
from tests.helpers import REPO, tiny_batches, tiny_config, write_tiny_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_watch_names_the_first_non_finite_step_and_its_terms():
    watch = NonFiniteWatch()
    ok = {"loss/gan": torch.tensor(0.5), "loss/identity": torch.tensor(0.2)}
    for step in (1, 2):
        watch.observe(step, ok)
    watch.check()  # all finite: no error
    watch.observe(3, {"loss/gan": torch.tensor(float("nan")), "loss/identity": torch.tensor(0.2)})
    watch.observe(4, {"loss/gan": torch.tensor(float("inf")), "loss/identity": torch.tensor(float("inf"))})
    assert watch.first_bad() == (3, ["loss/gan"])
    with pytest.raises(DivergenceError, match=r"gan not finite at step 3"):
        watch.check()


def poisoned(trainer: Trainer, from_call: int, until_call: int | None = None) -> Trainer:
    """The method's generator loss becomes NaN on calls from_call..until_call (1-based)."""
    inner, calls = trainer.method.generator_step, {"n": 0}

    def generator_step(x_a, x_b):
        out = inner(x_a, x_b)
        calls["n"] += 1
        if calls["n"] >= from_call and (until_call is None or calls["n"] <= until_call):
            out.loss = out.loss * float("nan")
            out.terms["gan"] = out.terms["gan"] * float("nan")
        return out

    trainer.method.generator_step = generator_step
    return trainer


def test_stop_names_the_step_and_saves_nothing_from_it_on(tmp_path):
    trainer = poisoned(Trainer(tiny_config(tmp_path, "train.max_steps=8", "train.checkpoint_every=2",
                                           "train.log_every=4")), from_call=3)
    with pytest.raises(DivergenceError, match=r"gan, G_total not finite at step 3"):
        trainer.fit(tiny_batches(8, batch_size=2))
    saved = [p.name for p in list_step_checkpoints(tmp_path / "run" / "checkpoints")]
    assert saved == ["step_00000002.pt"]  # the last good one; steps 4 and on were never written
    assert not (tmp_path / "run" / "generator.pt").exists()


def test_skip_counts_the_skipped_update_and_the_run_finishes(tmp_path):
    trainer = poisoned(Trainer(tiny_config(tmp_path, "train.max_steps=6", "train.log_every=6",
                                           "train.nonfinite=skip")), from_call=3, until_call=3)
    last = trainer.fit(tiny_batches(6, batch_size=2))
    assert last["guard/skipped_G"] == 1.0
    assert (tmp_path / "run" / "generator.pt").is_file()
    for p in trainer.method.generators.parameters():
        assert torch.isfinite(p).all()  # the NaN step never reached the weights


def test_skip_gives_up_after_too_many_skipped_steps_in_a_row(tmp_path):
    trainer = poisoned(Trainer(tiny_config(tmp_path, "train.max_steps=20", "train.nonfinite=skip",
                                           "train.nonfinite_max_skips=3")), from_call=2)
    with pytest.raises(DivergenceError, match=r"4 steps in a row up to step 5"):
        trainer.fit(tiny_batches(20, batch_size=2))


def test_a_translator_with_non_finite_weights_is_neither_exported_nor_served(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, "train.max_steps=1"))
    trainer.fit(tiny_batches(1, batch_size=2))
    with torch.no_grad():
        next(trainer.method.generators["D_b"].parameters()).fill_(float("nan"))
    with pytest.raises(CheckpointError, match="non-finite weights"):
        serving_payload(trainer.method, {}, trainer.step)
    good = tmp_path / "run" / "generator.pt"
    payload = torch.load(good, weights_only=True)
    first = next(iter(payload["translation"]["E_ab"]))
    payload["translation"]["E_ab"][first].fill_(float("inf"))
    bad = tmp_path / "diverged.pt"
    torch.save(payload, bad)
    with pytest.raises(CheckpointError, match=r"diverged.pt has non-finite weights \(in E_ab\."):
        load_translator(bad)


def test_crossnet_train_that_diverges_ends_with_one_line(tmp_path):
    data = write_tiny_dataset(tmp_path / "data", n_train=4, n_test=2, size=36)
    result = subprocess.run(
        [sys.executable, "-m", "crossnet_dist", "train", "--local", str(REPO / "jobs/configs/tiny.yaml"),
         "optim.lr=1e30", "train.max_steps=6", f"train.out_dir={tmp_path / 'run'}", f"data.root={data}",
         "train.progress=false"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("crossnet train: error: training diverged:") and "not finite at step" in last
    assert "Traceback" not in result.stderr
