"""The GPU path in one command: training steps, DeepSpeed engines and the serving forward on one GPU.

    python bench/gpu_check.py --out DIR [--budget-s 480] [--cpu-smoke]

Writes DIR/gpu_check.json and DIR/gpu_check.md (rewritten after every part, so a run cut short keeps
what it measured). Parts, in the order they run:
  peak       dense matmul TFLOP/s, bf16 and fp32 (the MFU denominator, measured in the same run)
  steps      paper-size CrossNet and CycleGAN training steps (256 px, full width) at batch 1, 4, 8:
             fp32, bf16 autocast, bf16 + channels_last; step time, images/s, MFU, host syncs per step
  deepspeed  the two ZeRO-2 engines on one NCCL rank: bf16 vs fp32 losses after 20 steps from the
             same seed (tolerance 2%), peak memory per batch size
  translate  translate_images at batch 1, 8, 32, fp32 vs bf16; the largest image translated untiled,
             and one of twice its side in tiles
  compile    bf16 + channels_last + torch.compile at batch 4 (last: compiling takes minutes)
Without a CUDA device every part prints one line saying it is skipped and the script exits 0.
--cpu-smoke runs every part except compile on the CPU with tiny networks (the suite does, so this
script cannot rot); its numbers mean nothing.

Needs torch, deepspeed, omegaconf, pyyaml, pillow and numpy, not Ray (`make gpu-bundle` gathers the
wheels for a machine that has only PyTorch).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

PARTS = ("peak", "steps", "deepspeed", "translate", "compile")
TARGETS = {"compile_speedup_batch4": 2.0, "best_mfu": 0.35, "bf16_loss_tolerance": 0.02}


def run_part(name: str, setup, smoke: bool) -> dict:
    from bench import gpu_parts as parts

    if name == "peak":
        return parts.matmul_peak(setup)
    if name == "steps":
        return parts.training_steps(setup, ("crossnet", "cyclegan"), (1, 2) if smoke else (1, 4, 8),
                                    ("fp32", "bf16", "bf16+channels_last"), steps=2 if smoke else 20,
                                    warmup=1 if smoke else 5, reserve_s=0 if smoke else 200)
    if name == "deepspeed":
        return parts.deepspeed_engines(setup, batch=2 if smoke else 4, steps=20, memory_batches=(1, 2) if smoke else (1, 4, 8),
                                       tolerance=TARGETS["bf16_loss_tolerance"])
    if name == "translate":
        return parts.translation(setup, (1, 8, 32), reps=2 if smoke else 10,
                                 sides=(64, 128) if smoke else (1024, 2048, 4096, 8192, 16384))
    if name == "compile":
        if smoke:
            return {"skipped": "not in --cpu-smoke: Inductor compiles every network for minutes on a CPU "
                               "(train.compile itself is covered by the suite)"}
        return parts.training_steps(setup, ("crossnet", "cyclegan"), (4,), ("bf16+channels_last+compile",),
                                    steps=20, warmup=3, reserve_s=90)
    raise ValueError(f"unknown part {name!r}")


def summarise(results: dict) -> dict:
    """MFU per step row, CrossNet/CycleGAN time per FLOP, and the issue's targets."""
    parts = results["parts"]
    peak = parts.get("peak", {}).get("bf16_tflops")
    rows = [r for key in ("steps", "compile") for r in parts.get(key, {}).get("rows", []) if "step_ms" in r]
    for r in rows:
        r["mfu"] = r["flops"] / (r["step_ms"] / 1e3) / (peak * 1e12) if peak else None
    by = {(r["method"], r["batch"], r["variant"]): r for r in rows}
    per_flop = []
    for (method, batch, variant), r in sorted(by.items()):
        other = by.get(("cyclegan", batch, variant))
        if method == "crossnet" and other:
            per_flop.append({"batch": batch, "variant": variant, "crossnet_per_cyclegan_time_per_flop":
                             (r["step_ms"] / r["flops"]) / (other["step_ms"] / other["flops"])})
    summary: dict = {"per_flop": per_flop}
    for method in ("crossnet", "cyclegan"):
        base, best = by.get((method, 4, "fp32")), by.get((method, 4, "bf16+channels_last+compile"))
        if base and best:
            summary[f"{method}_compile_speedup_batch4"] = base["step_ms"] / best["step_ms"]
    mfus = [r["mfu"] for r in rows if r.get("mfu") is not None]
    summary["best_mfu"] = max(mfus) if mfus else None
    ds = parts.get("deepspeed", {})
    summary["bf16_loss_relative_difference"] = ds.get("relative_difference_last5")
    summary["targets"] = TARGETS
    results["summary"] = summary
    return results


def markdown(results: dict) -> str:
    p, s = results["parts"], results.get("summary", {})
    lines = [f"# GPU check: {results['device']}", "",
             f"torch {results['torch']}, CUDA {results['cuda']}, Python {results['python']}, "
             f"{'CPU SMOKE RUN (numbers mean nothing)' if results['smoke'] else 'full run'}; Ray imported: "
             f"{results['ray_imported']}", ""]
    peak = p.get("peak", {})
    if "bf16_tflops" in peak:
        lines += [f"Measured matmul peak ({peak['n']}^3): bf16 {peak['bf16_tflops']:.1f} TFLOP/s, fp32 "
                  f"{peak['fp32_tflops']:.1f} TFLOP/s (TF32 matmul {peak['tf32_matmul']}, conv {peak['tf32_conv']})", ""]
    rows = [r for key in ("steps", "compile") for r in p.get(key, {}).get("rows", [])]
    if rows:
        lines += ["| method | batch | variant | step ms | images/s | MFU (bf16 peak) | host syncs/step | peak GiB |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            if "step_ms" not in r:
                lines.append(f"| {r['method']} | {r['batch']} | {r['variant']} | {r.get('skipped', r.get('error'))} |||||")
                continue
            mfu = f"{r['mfu']:.1%}" if r.get("mfu") is not None else "-"
            syncs = (r.get("host_syncs") or {}).get("count", "-")
            mem = f"{r['peak_mem_gib']:.2f}" if r.get("peak_mem_gib") is not None else "-"
            lines.append(f"| {r['method']} | {r['batch']} | {r['variant']} | {r['step_ms']:.1f} | "
                         f"{r['images_per_s']:.1f} | {mfu} | {syncs} | {mem} |")
        lines.append("")
    for row in s.get("per_flop", []):
        lines.append(f"- CrossNet/CycleGAN time per FLOP, batch {row['batch']} {row['variant']}: "
                     f"{row['crossnet_per_cyclegan_time_per_flop']:.2f}")
    for method in ("crossnet", "cyclegan"):
        if f"{method}_compile_speedup_batch4" in s:
            lines.append(f"- {method}: bf16+channels_last+compile / fp32 throughput at batch 4: "
                         f"{s[f'{method}_compile_speedup_batch4']:.2f}x (target >= {TARGETS['compile_speedup_batch4']}x)")
    if s.get("best_mfu") is not None:
        lines.append(f"- best MFU: {s['best_mfu']:.1%} (target >= {TARGETS['best_mfu']:.0%})")
    ds = p.get("deepspeed", {})
    if "relative_difference_last5" in ds:
        rel = ds["relative_difference_last5"]
        lines += [
            "",
            f"DeepSpeed ZeRO-2, one rank, batch {ds['fp32']['batch']}, {ds['fp32']['steps']} steps: bf16 vs fp32 "
            f"losses (mean of the last 5 steps) differ by G {rel['G_total']:.2%}, D {rel['D_total']:.2%} "
            f"(tolerance {ds['tolerance']:.0%}: {'within' if ds['within_tolerance'] else 'NOT within'}); "
            f"step {ds['fp32']['step_ms']:.1f} ms fp32, {ds['bf16']['step_ms']:.1f} ms bf16; peak GiB per batch "
            f"(bf16): {ds['peak_mem_gib_bf16_by_batch']}; host syncs per bf16 step: "
            f"{(ds['bf16'].get('host_syncs') or {}).get('count', '-')} {(ds['bf16'].get('host_syncs') or {}).get('first', '')}",
        ]
    tr = p.get("translate", {})
    if "rows" in tr:
        lines += ["", "| translate | batch | serving path images/s | forward only images/s |", "|---|---|---|---|"]
        lines += [f"| {r['precision']} | {r['batch']} | {r['serving_path_images_per_s']:.1f} | "
                  f"{r['forward_only_images_per_s']:.1f} |" for r in tr["rows"]]
        tried = "; ".join(f"{a['side']} px: " + (f"{a['seconds']:.2f} s" + (f", {a['peak_mem_gib']:.1f} GiB"
                          if a.get("peak_mem_gib") is not None else "") if "seconds" in a else a.get("error", a.get("skipped")))
                          for a in tr["untiled"]["attempts"])
        t = tr["tiled"]
        tiled = (
            (
                f"{t['side']} px in {t['tile']}-px tiles: {t['seconds']:.2f} s"
                + (f", {t['peak_mem_gib']:.1f} GiB" if t.get("peak_mem_gib") is not None else "")
            )
            if "seconds" in t
            else f"{t['side']} px: {t.get('error', t.get('skipped'))}"
        )
        lines += ["", f"Largest square image translated untiled (bf16): {tr['untiled']['largest_side']} px ({tried}). "
                  f"Tiled: {tiled}"]
    for name in PARTS:
        part = p.get(name, {})
        for key in ("skipped", "error"):
            if key in part:
                lines.append(f"- {name}: {key}: {part[key]}")
    return "\n".join(lines) + "\n"


def write(out: Path, results: dict) -> None:
    summarise(results)
    (out / "gpu_check.json").write_text(json.dumps(results, indent=1, default=str))
    (out / "gpu_check.md").write_text(markdown(results))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget; later parts are cut short")
    parser.add_argument("--cpu-smoke", action="store_true", help="every part on the CPU, tiny networks")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    args = parser.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown --parts {unknown}; choose from {', '.join(PARTS)}")
    cuda = torch.cuda.is_available() and not args.cpu_smoke
    os.environ.setdefault("DS_ACCELERATOR", "cuda" if cuda else "cpu")  # before DeepSpeed is imported
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    results = {"device": torch.cuda.get_device_name(device) if cuda else f"CPU ({platform.processor() or 'unknown'})",
               "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
               "smoke": args.cpu_smoke, "parts": {}, "ray_imported": False}
    if not cuda and not args.cpu_smoke:
        for name in parts:
            reason = f"no CUDA device (torch {torch.__version__}, torch.cuda.is_available() is False)"
            print(f"gpu_check: {name}: skipped: {reason}")
            results["parts"][name] = {"skipped": reason}
        write(args.out, results)
        return 0

    from bench.gpu_parts import Setup

    setup = Setup(device=device, smoke=args.cpu_smoke, budget_s=args.budget_s)
    for name in parts:
        t0 = time.perf_counter()
        print(f"gpu_check: {name} ...", flush=True)
        try:
            results["parts"][name] = run_part(name, setup, args.cpu_smoke)
        except Exception as err:  # one part failing must not cost the others their one GPU run
            traceback.print_exc()
            results["parts"][name] = {"error": f"{type(err).__name__}: {err}"}
        results["parts"][name]["seconds"] = time.perf_counter() - t0
        results["ray_imported"] = "ray" in sys.modules
        write(args.out, results)
        print(f"gpu_check: {name} done in {time.perf_counter() - t0:.1f} s", flush=True)
    print((args.out / "gpu_check.md").read_text())
    return 1 if any("error" in p for p in results["parts"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
