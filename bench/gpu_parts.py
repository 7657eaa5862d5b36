"""The measurements of bench/gpu_check.py, one function per part; each returns a JSON-able dict.

Everything runs through the project's own code: `load_config`, `build_method`, `train_step` with the
trainers' `StepPrecision`, `TorchOptimizerGroup` (the single-process trainer's) and `build_engine`
(the DeepSpeed one the Ray workers use), and `translate_images` (the serving path's forward). No Ray.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
import warnings
from dataclasses import dataclass

import torch

# the tiny networks of --cpu-smoke: every code path, none of the cost (its numbers mean nothing)
SMOKE = ["model.image_size=32", "data.load_size=32", "model.gen_channels=8", "model.disc_channels=8",
         "model.n_encoder_blocks=1", "model.n_translator_blocks=1"]

VARIANTS = {  # name -> (train.precision, train.channels_last, train.compile)
    "fp32": ("fp32", False, False),
    "bf16": ("bf16", False, False),
    "bf16+channels_last": ("bf16", True, False),
    "bf16+channels_last+compile": ("bf16", True, True),
}


@dataclass
class Setup:
    device: torch.device
    smoke: bool
    budget_s: float
    t0: float = 0.0

    def __post_init__(self):
        self.t0 = time.perf_counter()

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def left_s(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t0)

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def config(self, method: str, batch: int, extra=()):
        from crossnet_dist.config import load_config

        return load_config(method, [f"data.batch_size={batch}", *(SMOKE if self.smoke else []), *extra])

    def peak_memory_reset(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_memory_gib(self) -> float | None:
        return torch.cuda.max_memory_allocated(self.device) / 2**30 if self.cuda else None

    def free(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()


def synthetic_batches(cfg, device, n: int = 2, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Smooth random images in [-1, 1] (upsampled noise): real-looking statistics, no data set needed."""
    g = torch.Generator().manual_seed(seed)
    s, b = cfg.model.image_size, cfg.data.batch_size
    out = []
    for _ in range(n):
        pair = [torch.nn.functional.interpolate(torch.rand(b, 3, s // 8, s // 8, generator=g) * 2 - 1, size=(s, s),
                                                mode="bilinear", align_corners=False) for _ in range(2)]
        out.append((pair[0].to(device), pair[1].to(device)))
    return out


# ---- the GPU's own peak ---------------------------------------------------------------------------


def matmul_peak(setup: Setup) -> dict:
    """Dense matmul TFLOP/s in bf16 and fp32: the MFU denominator, measured, not a datasheet value."""
    n = 256 if setup.smoke else 8192
    out = {"n": n, "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_conv": torch.backends.cudnn.allow_tf32}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        a = torch.randn(n, n, device=setup.device, dtype=dtype)
        b = torch.randn(n, n, device=setup.device, dtype=dtype)
        for _ in range(3):
            a @ b
        reps = 3 if setup.smoke else 30
        setup.sync()
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        setup.sync()
        out[f"{name}_tflops"] = 2 * n**3 * reps / (time.perf_counter() - t0) / 1e12
        del a, b
    setup.free()
    return out


# ---- training steps ---------------------------------------------------------------------------------


def step_flops(cfg, batch: int) -> float:
    """FLOPs of one G+D training step at `batch` (torch FlopCounterMode on the meta device)."""
    from bench.scaling_model import model_stats

    return model_stats(cfg, batch)["flops_per_sample"] * batch


def count_host_syncs(setup: Setup, fn) -> dict:
    """Host-device synchronisations while fn() runs (torch.cuda.set_sync_debug_mode("warn"))."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
            setup.sync()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message)]
    return {"count": len(syncs), "first": sorted(set(syncs))[:5]}


def build_trainable(setup: Setup, cfg, compiled: bool = False, engines: bool = False):
    """(method, g_opt, d_opt, pools, precision) as the trainers build them."""
    from crossnet_dist.image_pool import ImagePool
    from crossnet_dist.methods import build_method
    from crossnet_dist.training.optimizers import torch_optimizer_groups
    from crossnet_dist.training.precision import StepPrecision
    from crossnet_dist.training.seed import seed_everything

    seed_everything(cfg.train.seed)
    precision = StepPrecision.from_config(cfg.train, setup.device)
    method = precision.prepare_module(build_method(cfg).to(setup.device))
    if compiled:
        from crossnet_dist.training.compile import compile_networks

        compile_networks(method)
    if engines:
        from crossnet_dist.distributed.engines import build_engine

        g_opt = build_engine(method.generators, "generators", cfg.optim, cfg.dist, cfg.data.batch_size)
        d_opt = build_engine(method.discriminators, "discriminators", cfg.optim, cfg.dist, cfg.data.batch_size)
    else:
        g_opt, d_opt = torch_optimizer_groups(method, cfg.optim)
    pools = {d: ImagePool(cfg.optim.pool_size, seed=cfg.train.seed + i) for i, d in enumerate("ab")}
    method.train()
    return method, g_opt, d_opt, pools, precision


def time_steps(setup: Setup, method_name: str, batch: int, variant: str, steps: int, warmup: int) -> dict:
    from crossnet_dist.training.step import train_step

    precision_name, channels_last, compiled = VARIANTS[variant]
    cfg = setup.config(method_name, batch, [f"train.precision={precision_name}", f"train.channels_last={channels_last}"])
    method, g_opt, d_opt, pools, precision = build_trainable(setup, cfg, compiled)
    data = [(precision.prepare_batch(a), precision.prepare_batch(b)) for a, b in synthetic_batches(cfg, setup.device)]
    # F821: the names are deleted at the end, after the last call, to free the device before setup.free()
    step = lambda i: train_step(method, *data[i % len(data)], g_opt, d_opt, pools, precision=precision)  # noqa: E731, F821
    setup.peak_memory_reset()
    t0 = time.perf_counter()
    for i in range(warmup):
        step(i)
    setup.sync()
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(steps):
        terms = step(i)
    setup.sync()
    step_s = (time.perf_counter() - t0) / steps
    row = {"method": method_name, "batch": batch, "variant": variant, "step_ms": step_s * 1e3,
           "images_per_s": batch / step_s, "warmup_s": warmup_s, "peak_mem_gib": setup.peak_memory_gib(),
           "finite": bool(all(torch.isfinite(v).all() for v in terms.values()))}
    if setup.cuda:
        row["host_syncs"] = count_host_syncs(setup, lambda: step(0))
    del method, g_opt, d_opt, pools, data
    setup.free()
    return row


def training_steps(setup: Setup, methods, batches, variants, steps: int, warmup: int, reserve_s: float) -> dict:
    """Step time per method x batch x variant; MFU against the measured bf16 peak is added by the report."""
    rows, flops = [], {}
    for method_name in methods:
        for batch in batches:
            flops[f"{method_name}/{batch}"] = step_flops(setup.config(method_name, batch), batch)
            for variant in variants:
                if setup.left_s() < reserve_s:
                    rows.append({"method": method_name, "batch": batch, "variant": variant,
                                 "skipped": f"time budget (under {reserve_s:.0f} s left for the later parts)"})
                    continue
                row = time_steps(setup, method_name, batch, variant, steps, warmup)
                row["flops"] = flops[f"{method_name}/{batch}"]
                rows.append(row)
                print(f"  {method_name} batch {batch} {variant}: {row['step_ms']:.1f} ms/step", flush=True)
    return {"rows": rows}


# ---- DeepSpeed engines on one rank --------------------------------------------------------------------


@contextlib.contextmanager
def one_rank_group(setup: Setup):
    """A 1-rank process group on an in-memory store (NCCL on CUDA, gloo on CPU): nothing listens."""
    import torch.distributed as tdist

    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29533", "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # DeepSpeed reads them; nothing connects to MASTER_ADDR
    import inspect

    kwargs = {}
    if setup.cuda and "device_id" in inspect.signature(tdist.init_process_group).parameters:  # torch >= 2.3
        kwargs["device_id"] = setup.device
    tdist.init_process_group("nccl" if setup.cuda else "gloo", store=tdist.HashStore(), rank=0, world_size=1, **kwargs)
    try:
        yield
    finally:
        tdist.destroy_process_group()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def engine_run(setup: Setup, precision: str, batch: int, steps: int, zero_stage: int = 2) -> dict:
    from crossnet_dist.training.step import train_step

    cfg = setup.config("crossnet", batch, [f"train.precision={precision}", f"dist.zero_stage={zero_stage}"])
    method, g_opt, d_opt, pools, prec = build_trainable(setup, cfg, engines=True)
    data = synthetic_batches(cfg, setup.device, n=4, seed=1)
    setup.peak_memory_reset()
    history = []
    t0 = time.perf_counter()
    for i in range(steps):
        terms = train_step(method, *data[i % len(data)], g_opt, d_opt, pools, precision=prec)
        history.append(torch.stack([terms["loss/G_total"], terms["loss/D_total"]]))
    setup.sync()
    elapsed = time.perf_counter() - t0
    losses = torch.stack(history).float().cpu()
    syncs = None
    if setup.cuda:  # F821: deleted at the end, after this last use, to free the device before setup.free()
        syncs = count_host_syncs(setup, lambda: train_step(method, *data[0], g_opt, d_opt, pools, precision=prec))  # noqa: F821
    out = {"precision": precision, "batch": batch, "steps": steps, "zero_stage": zero_stage,
           "G_total": losses[:, 0].tolist(), "D_total": losses[:, 1].tolist(), "step_ms": elapsed / steps * 1e3,
           "finite": bool(torch.isfinite(losses).all()), "peak_mem_gib": setup.peak_memory_gib(), "host_syncs": syncs}
    for group in (g_opt, d_opt):
        destroy = getattr(group.engine, "destroy", None)
        if destroy is not None:
            destroy()
    del method, g_opt, d_opt, pools, data
    setup.free()
    return out


def deepspeed_engines(setup: Setup, batch: int, steps: int, memory_batches, tolerance: float) -> dict:
    """ZeRO-2 engines (generators, discriminators) on one rank: bf16 autocast vs fp32 from the same
    seed and data, compared over the last 5 of `steps` steps; then peak memory per batch size."""
    with one_rank_group(setup):
        fp32 = engine_run(setup, "fp32", batch, steps)
        bf16 = engine_run(setup, "bf16", batch, steps)
        memory = {}
        for b in memory_batches:
            if setup.left_s() < 60:
                memory[str(b)] = "skipped: time budget"
                continue
            memory[str(b)] = engine_run(setup, "bf16", b, 3)["peak_mem_gib"]
    rel = {}
    for key in ("G_total", "D_total"):
        ref, low = torch.tensor(fp32[key][-5:]).mean(), torch.tensor(bf16[key][-5:]).mean()
        rel[key] = float((low - ref).abs() / ref.abs().clamp_min(1e-12))
    return {"fp32": fp32, "bf16": bf16, "relative_difference_last5": rel, "tolerance": tolerance,
            "within_tolerance": all(v <= tolerance for v in rel.values()) and fp32["finite"] and bf16["finite"],
            "peak_mem_gib_bf16_by_batch": memory}


# ---- the serving path's forward -------------------------------------------------------------------------


def translation(setup: Setup, batches, reps: int, sides) -> dict:
    """translate_images (PIL in, PIL out: what the endpoint and `crossnet translate` run) at each
    batch size, fp32 vs bf16 autocast; the model forward alone beside it; then the largest square
    image the generator translates untiled (doubling the side until out of memory)."""
    from PIL import Image

    from crossnet_dist.methods import build_method
    from crossnet_dist.training.precision import StepPrecision
    from crossnet_dist.translate import translate_images

    cfg = setup.config("crossnet", 1)
    s = cfg.model.image_size
    method = build_method(cfg).to(setup.device).eval()
    gen = torch.Generator().manual_seed(0)
    images = [Image.fromarray(torch.randint(0, 256, (s, s, 3), generator=gen, dtype=torch.uint8).numpy())
              for _ in range(max(batches))]
    rows = []
    for name in ("fp32", "bf16"):
        precision = StepPrecision(bf16=name == "bf16")
        for b in batches:
            x = torch.rand(b, 3, s, s, device=setup.device) * 2 - 1
            timings = {}
            for kind, fn in (("serving_path", lambda: translate_images(method, images[:b], "a2b", s, setup.device)),  # noqa: B023
                             ("forward_only", lambda: method.translate(x, "a2b"))):  # noqa: B023 (called in this iteration)
                with torch.no_grad(), precision.autocast(setup.device.type):
                    fn()
                    setup.sync()
                    t0 = time.perf_counter()
                    for _ in range(reps):
                        fn()
                    setup.sync()
                timings[f"{kind}_images_per_s"] = b * reps / (time.perf_counter() - t0)
            rows.append({"precision": name, "batch": b, **timings})
    largest = None
    attempts = []
    for side in sides:
        if setup.left_s() < 30:
            attempts.append({"side": side, "skipped": "time budget"})
            break
        setup.peak_memory_reset()
        try:
            x = torch.zeros(1, 3, side, side, device=setup.device)
            with torch.no_grad(), StepPrecision(bf16=True).autocast(setup.device.type):
                t0 = time.perf_counter()
                method.translate(x, "a2b")
                setup.sync()
            attempts.append({"side": side, "seconds": time.perf_counter() - t0, "peak_mem_gib": setup.peak_memory_gib()})
            largest = side
        except torch.cuda.OutOfMemoryError:
            attempts.append({"side": side, "error": "out of memory"})
            break
        except RuntimeError as err:  # e.g. a kernel without 64-bit indexing for tensors of > 2^31 elements
            attempts.append({"side": side, "error": f"{type(err).__name__}: {str(err)[:200]}"})
            break
        finally:
            x = None
            setup.free()
    return {"rows": rows, "untiled": {"largest_side": largest, "attempts": attempts},
            "tiled": tiled_translation(setup, method, cfg, 2 * (largest or sides[0]), tile=max(sides[0], 64))}


def tiled_translation(setup: Setup, method, cfg, side: int, tile: int) -> dict:
    """A side x side image at full resolution in tiles (crossnet_dist/full_resolution.py, bf16), twice
    the largest untiled side: time and peak memory."""
    from crossnet_dist.full_resolution import translate_tiled
    from crossnet_dist.networks.shapes import min_image_side
    from crossnet_dist.training.precision import StepPrecision

    if setup.left_s() < 60:
        return {"side": side, "skipped": "time budget"}
    setup.peak_memory_reset()
    try:
        x = torch.zeros(1, 3, side, side, device=setup.device)
        with torch.no_grad(), StepPrecision(bf16=True).autocast(setup.device.type):
            t0 = time.perf_counter()
            translate_tiled(method, x, "a2b", 2 ** cfg.model.n_downsampling, tile, 32, min_side=min_image_side(cfg.model))
            setup.sync()
        return {"side": side, "tile": tile, "seconds": time.perf_counter() - t0, "peak_mem_gib": setup.peak_memory_gib()}
    except (torch.cuda.OutOfMemoryError, RuntimeError) as err:
        return {"side": side, "tile": tile, "error": f"{type(err).__name__}: {str(err)[:200]}"}
    finally:
        x = None
        setup.free()
