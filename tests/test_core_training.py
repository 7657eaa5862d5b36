"""The single-process trainer: learning, checkpoints, resume, samples, logs."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from crossnet_dist.checkpoints.files import TRAIN_FORMAT, CheckpointError, load_checked
from crossnet_dist.checkpoints.translator import load_translator
from crossnet_dist.image_pool import ImagePool
from crossnet_dist.training.loop import Trainer
from crossnet_dist.training.optimizers import linear_decay
from tests.helpers import tiny_batches, tiny_config


def window_mean(records, key, lo, hi):
    return float(np.mean([r[key] for r in records[lo:hi]]))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_tiny_crossnet_overfits_a_tiny_real_image_set(tmp_path):
    cfg = tiny_config(tmp_path, "train.max_steps=300", "optim.n_epochs=1000", "train.log_every=1", "train.sample_every=1000",
                      "train.checkpoint_every=1000")
    trainer = Trainer(cfg)
    batches = tiny_batches(2, batch_size=4)  # 8 crops per domain, seen 150 times each
    trainer.fit(batches)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 300
    for key in ("loss/cross_identity", "loss/identity"):
        first, last = window_mean(records, key, 0, 20), window_mean(records, key, -20, None)
        assert last < 0.5 * first, f"{key}: {first:.3f} -> {last:.3f}"


def test_checkpoint_round_trip_restores_identical_outputs(tmp_path):
    cfg = tiny_config(tmp_path, "train.max_steps=3")
    trainer = Trainer(cfg)
    trainer.fit(tiny_batches(3))
    ckpt = sorted((tmp_path / "run" / "checkpoints").glob("step_*.pt"))[-1]

    restored = Trainer(tiny_config(tmp_path / "other", "train.seed=123"))
    restored.resume(ckpt)
    x = tiny_batches(1)[0]["a"]
    with torch.no_grad():
        for direction in ("a2b", "b2a"):
            assert torch.equal(trainer.method.translate(x, direction), restored.method.translate(x, direction))
    assert restored.step == 3
    for k, v in trainer.method.state_dict().items():
        assert torch.equal(v, restored.method.state_dict()[k]), k

    served, served_cfg = load_translator(tmp_path / "run" / "generator.pt")
    assert not hasattr(served.generators, "T_ab") and "T_ab" not in served.generators
    with torch.no_grad():
        assert torch.equal(served.translate(x, "a2b"), trainer.method.translate(x, "a2b"))
    assert served_cfg.model.image_size == 32


def test_resume_matches_an_uninterrupted_run(tmp_path):
    batches = tiny_batches(3)
    straight = Trainer(tiny_config(tmp_path / "a", "train.max_steps=6"))
    straight.fit(batches)

    first = Trainer(tiny_config(tmp_path / "b", "train.max_steps=4"))
    first.fit(batches)  # one epoch of 3 + one step of the next
    second = Trainer(tiny_config(tmp_path / "b", "train.max_steps=6"))
    assert second.resume() is not None and (second.step, second.epoch, second.epoch_step) == (4, 1, 1)
    # a plain list has no set_epoch: feed the rest of the interrupted epoch by hand, then continue
    second.fit(_ResumableList(batches))
    for k, v in straight.method.state_dict().items():
        assert torch.allclose(v, second.method.state_dict()[k], atol=1e-6), k


class _ResumableList:
    """A list of batches that honours set_epoch(epoch, start_index) like the streaming dataset."""

    def __init__(self, batches):
        self.batches, self.start, self.dataset = batches, 0, self

    def set_epoch(self, epoch, start_index=0):
        self.start = start_index // self.batches[0]["a"].shape[0]

    def __iter__(self):
        return iter(self.batches[self.start:])


def test_truncated_checkpoint_is_refused_with_its_path(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, "train.max_steps=1"))
    trainer.fit(tiny_batches(1))
    good = tmp_path / "run" / "generator.pt"
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=f"{bad}.*truncated or corrupt"):
        load_translator(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_translator(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="format 'crossnet-dist/serving'"):
        load_checked(good, TRAIN_FORMAT)


def test_checkpoints_are_rotated_and_written_atomically(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, "train.max_steps=5", "train.checkpoint_every=1", "train.keep_checkpoints=2"))
    trainer.fit(tiny_batches(5))
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names == ["step_00000004.pt", "step_00000005.pt"]  # no temporary files left behind


def test_sample_grid_and_tensorboard_logs(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, "train.max_steps=2", "train.sample_every=2", "train.log_every=1"))
    trainer.fit(tiny_batches(2))
    grid = Image.open(tmp_path / "run" / "samples" / "step_00000002.png")
    # 4 a-rows + 4 b-rows of 3 columns of 32 px with 2 px padding
    assert grid.size == (3 * 34 + 2, 8 * 34 + 2)
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert records[-1]["perf/images_per_s"] > 0 and "loss/cross_identity" in records[-1]


def test_linear_decay_schedule_matches_the_reference():
    f = linear_decay(n_epochs=100, n_epochs_decay=100)
    assert f(0) == 1.0 and f(98) == 1.0
    assert f(99) == pytest.approx(1 - 0 / 101) and f(100) == pytest.approx(1 - 1 / 101)
    assert f(199) == pytest.approx(1 - 100 / 101)


def test_image_pool_returns_new_images_until_full_then_mixes_history():
    pool = ImagePool(size=2, seed=0)
    first = torch.zeros(2, 3, 4, 4)
    assert torch.equal(pool.query(first), first)
    seen_old = False
    for i in range(1, 20):
        out = pool.query(torch.full((1, 3, 4, 4), float(i)))
        assert out.shape == (1, 3, 4, 4)
        seen_old |= out[0, 0, 0, 0].item() != float(i)
    assert seen_old and len(pool.images) == 2
    assert torch.equal(ImagePool(size=0).query(first), first)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_compiled_networks_compute_the_eager_losses_and_gradients_and_export_the_same_format(tmp_path):
    """train.compile: every network compiled in place. A generator step gives the eager loss and
    gradients to float tolerance (the parameters are not compared after an Adam step, whose first
    update is lr * sign(grad) and flips on near-zero gradients);
    parameter names are unchanged, and the serving export loads as an eager translator."""
    from crossnet_dist.methods import build_method
    from crossnet_dist.training.compile import compile_networks
    from crossnet_dist.training.seed import seed_everything

    cfg = tiny_config(tmp_path / "run", "train.max_steps=2", "train.compile=true")
    seed_everything(0)
    eager = build_method(cfg)
    seed_everything(0)
    compiled = build_method(cfg)
    assert len(compile_networks(compiled)) == len(compiled.generators) + len(compiled.discriminators)
    batch = tiny_batches(1)[0]
    losses = [m.generator_step(batch["a"], batch["b"]).loss for m in (eager, compiled)]
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-4, atol=1e-6)
    for loss in losses:
        loss.backward()
    names = [n for n, _ in eager.generators.named_parameters()]
    assert names == [n for n, _ in compiled.generators.named_parameters()]
    g_eager = torch.cat([p.grad.flatten() for p in eager.generators.parameters()])
    g_comp = torch.cat([p.grad.flatten() for p in compiled.generators.parameters()])
    # ~1e-2 relative: InstanceNorm's variance is computed another way and rounding differs (the
    # conv biases before InstanceNorm have a gradient of exactly 0 in theory and ~1e-9 noise in both)
    assert ((g_comp - g_eager).norm() / g_eager.norm()).item() < 5e-2

    trainer = Trainer(cfg)
    assert all(m._compiled_call_impl is not None for g in (trainer.method.generators, trainer.method.discriminators)
               for m in g.values())
    trainer.fit(tiny_batches(2))
    served, served_cfg = load_translator(trainer.out_dir / "generator.pt")
    assert served_cfg.train.compile is True and served.generators["E_ab"]._compiled_call_impl is None
    x = batch["a"]
    with torch.no_grad():
        torch.testing.assert_close(served.translate(x, "a2b"), trainer.method.translate(x, "a2b"), rtol=1e-3, atol=1e-4)


class _SlowBatches(list):
    """Batches whose every read takes `seconds` (a slow step, without a fixed sleep in the test itself)."""

    def __init__(self, batches, seconds: float):
        super().__init__(batches)
        self.seconds = seconds

    def __iter__(self):
        import time

        for batch in super().__iter__():
            time.sleep(self.seconds)
            yield batch


def test_a_time_limit_stops_training_and_checkpoints_the_step_it_reached(tmp_path):
    cfg = tiny_config(tmp_path, "train.max_steps=0", "train.max_minutes=0.01", "optim.n_epochs=1000",
                      "train.checkpoint_every=1000", "train.sample_every=1000")
    trainer = Trainer(cfg)
    trainer.fit(_SlowBatches(tiny_batches(2), seconds=0.1))  # 0.6 s of budget, >= 0.1 s a step
    assert 1 <= trainer.step <= 6
    saved = load_checked(tmp_path / "run" / "checkpoints" / f"step_{trainer.step:08d}.pt", TRAIN_FORMAT)
    assert saved["step"] == trainer.step and (tmp_path / "run" / "generator.pt").is_file()
