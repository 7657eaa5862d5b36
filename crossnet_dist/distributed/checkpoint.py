"""The DeepSpeed checkpoint of distributed runs: its writer (each rank's part), its reader (resume,
dist.init_from), and the serving export from the engines' weights: at the end of a run
(`gathered_serving_payload`) or from a stored checkpoint (`serving_checkpoint`, Tune's scoring).

A checkpoint (`<run>/step_XXXXXXXX/` in storage) is the merge of every rank's files:
  generators/state/, discriminators/state/   DeepSpeed checkpoints (ZeRO shards one file per rank)
  position_rank_XXXXX.pt                     step, epoch, batches into the epoch, image pools,
                                             LR schedules, RNG, fault counters of that rank
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import torch

from crossnet_dist.checkpoints.files import atomic_save
from crossnet_dist.checkpoints.translator import serving_payload
from crossnet_dist.training.ema import TranslatorEMA, build_ema
from crossnet_dist.training.optimizers import group_lr

log = logging.getLogger(__name__)

DS_TAG = "state"
ENGINES = ("generators", "discriminators")


def position_file(rank: int) -> str:
    return f"position_rank_{rank:05d}.pt"


def write_rank_files(worker, folder: Path) -> None:
    """This rank's files of the checkpoint at worker.step, into the local `folder`."""
    for name, group in zip(ENGINES, (worker.g_opt, worker.d_opt)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        group.engine.save_checkpoint(str(folder / name), tag=DS_TAG)
    atomic_save(rank_position(worker), folder / position_file(worker.rank))


def rank_position(worker) -> dict[str, Any]:
    """This rank's part of a checkpoint besides the DeepSpeed engines' own files."""
    return {
        "step": worker.step, "epoch": worker.epoch, "epoch_step": worker.epoch_step, "world_size": worker.world,
        "pools": {dom: pool.state_dict() for dom, pool in worker.pools.items()},
        "g_schedule": worker.g_opt.state_dict(), "d_schedule": worker.d_opt.state_dict(),
        "torch_rng": torch.get_rng_state(), "lost_steps": worker.lost_steps, "restarts": worker.restarts,
        "ema": worker.ema.state_dict() if worker.ema is not None else None,
    }


def restore_rank(worker, checkpoint) -> bool:
    """Loads `checkpoint` (a ray.train.Checkpoint, or None) into this rank; False when there is none."""
    if checkpoint is None:
        return False
    with checkpoint.as_directory() as folder:
        folder = Path(folder)
        pos_path = folder / position_file(worker.rank)
        if not pos_path.is_file():
            found = sorted(p.name for p in folder.glob("position_rank_*.pt"))
            raise RuntimeError(
                f"checkpoint {checkpoint.path} has no {pos_path.name} (it holds {found}): it was written by "
                f"{len(found)} workers; resume with dist.num_workers={len(found)}"
            )
        pos = torch.load(pos_path, map_location="cpu", weights_only=True)
        if pos["world_size"] != worker.world:
            raise RuntimeError(
                f"checkpoint {checkpoint.path} was written by {pos['world_size']} workers, this run has "
                f"{worker.world}: resume with dist.num_workers={pos['world_size']}"
            )
        for name, group in zip(ENGINES, (worker.g_opt, worker.d_opt)):
            path, _ = group.engine.load_checkpoint(str(folder / name), tag=DS_TAG, load_lr_scheduler_states=False)
            if path is None:
                raise RuntimeError(f"checkpoint {checkpoint.path} has no DeepSpeed state for {name}")
    for dom, pool in worker.pools.items():
        pool.load_state_dict(pos["pools"][dom])
        pool.to(worker.device)
    worker.g_opt.load_state_dict(pos["g_schedule"])
    worker.d_opt.load_state_dict(pos["d_schedule"])
    for name, group in zip(ENGINES, (worker.g_opt, worker.d_opt)):  # this run's LR (PBT may have changed optim.lr)
        group.set_base_lr(group_lr(worker.cfg.optim, name))
    torch.set_rng_state(pos["torch_rng"])
    if worker.ema is not None:
        if pos.get("ema") is not None:
            worker.ema.load_state_dict(pos["ema"])
        else:  # started from a run without EMA (dist.init_from): the average starts at its weights
            worker.ema = build_ema(worker.method, worker.cfg.train.ema_decay)
            log.info("rank %d: %s has no EMA weights; the average starts from its weights", worker.rank, checkpoint.path)
    worker.step, worker.epoch, worker.epoch_step = pos["step"], pos["epoch"], pos["epoch_step"]
    worker.lost_steps, worker.restarts = pos["lost_steps"], pos["restarts"]
    log.info("rank %d resumed from %s at step %d (epoch %d, batch %d)", worker.rank, checkpoint.path, worker.step,
             worker.epoch, worker.epoch_step)
    return True


def start_checkpoint(url: str, storage_cfg):
    """dist.init_from as a Ray Train checkpoint (None when unset); a missing one is an error."""
    if not url:
        return None
    import ray.train

    from crossnet_dist.storage.runs import resolve_storage

    where = resolve_storage(url, storage_cfg)
    if where.filesystem.get_file_info(where.fs_path).type != pafs.FileType.Directory:
        raise FileNotFoundError(f"config key 'dist.init_from': no checkpoint folder at {where.url}")
    return ray.train.Checkpoint(path=where.fs_path, filesystem=where.filesystem)


def gathered_serving_payload(method, config_container: dict, step: int, zero_stage: int, rank: int, ema=None) -> dict | None:
    """`serving_payload` with the translation modules' full fp32 weights, on rank 0 (None
    elsewhere). Under ZeRO-3 every rank must call this: the partitioned parameters are gathered
    collectively first, and copied out before they are partitioned again."""
    if zero_stage == 3:
        import deepspeed

        ctx = deepspeed.zero.GatheredParameters(list(method.generators.parameters()), modifier_rank=None)
    else:
        ctx = contextlib.nullcontext()
    with ctx:
        if rank != 0:
            return None
        payload = serving_payload(method, config_container, step, ema)
        payload["translation"] = {
            name: {k: (t.float() if t.is_floating_point() else t).clone() for k, t in sd.items()}
            for name, sd in payload["translation"].items()
        }
        return payload


def generator_state_from_checkpoint(folder: Path) -> dict[str, torch.Tensor]:
    """The `method.generators` state dict stored in `<checkpoint>/generators/` (local folder)."""
    engine_dir = folder / "generators"
    tagged = engine_dir / DS_TAG
    if not tagged.is_dir():
        raise FileNotFoundError(f"checkpoint {folder} has no DeepSpeed generators state ({tagged})")
    if any(tagged.glob("*optim_states.pt")) and any(tagged.glob("zero_pp_rank_*")):
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        state = get_fp32_state_dict_from_zero_checkpoint(str(engine_dir), tag=DS_TAG)
    else:  # ZeRO 0: the whole module is in the model-states file
        files = sorted(tagged.glob("mp_rank_*_model_states.pt"))
        if not files:
            raise FileNotFoundError(f"checkpoint {folder} has no model states in {tagged}")
        state = torch.load(files[0], map_location="cpu", weights_only=True)["module"]
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


def serving_checkpoint(train_checkpoint: str, filesystem: pafs.FileSystem, cfg, step: int, out: Path) -> Path:
    """Writes `out` (a serving checkpoint) from the Train checkpoint at `train_checkpoint` (a path in
    `filesystem`: local or S3); only its generators/ folder is fetched."""
    from crossnet_dist.config import to_container
    from crossnet_dist.methods import build_method

    with tempfile.TemporaryDirectory(prefix="crossnet-tune-ckpt-") as tmp:
        local = Path(tmp)
        pafs.copy_files(f"{train_checkpoint.rstrip('/')}/generators", str(local / "generators"),
                        source_filesystem=filesystem, destination_filesystem=pafs.LocalFileSystem())
        state = generator_state_from_checkpoint(local)
        ema_state = None
        if cfg.train.ema_decay:  # the averaged weights live in rank 0's position file (identical on every rank)
            position = f"{train_checkpoint.rstrip('/')}/{position_file(0)}"
            pafs.copy_files(position, str(local / position_file(0)), source_filesystem=filesystem,
                            destination_filesystem=pafs.LocalFileSystem())
            ema_state = torch.load(local / position_file(0), map_location="cpu", weights_only=True).get("ema")
    method = build_method(cfg)
    missing, unexpected = method.generators.load_state_dict(state, strict=False)
    needed = [k for k in missing if k.split(".", 1)[0] in method.translation_modules]
    if needed or unexpected:
        raise RuntimeError(f"checkpoint {train_checkpoint} does not match the trial's config: "
                           f"missing {needed[:3]}, unexpected {unexpected[:3]}")
    ema = None
    if ema_state is not None:
        ema = TranslatorEMA(method, cfg.train.ema_decay)
        ema.load_state_dict(ema_state)
    return atomic_save(serving_payload(method, to_container(cfg), step, ema), out)
