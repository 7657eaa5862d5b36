"""The scaling model checked against a measured 2-worker step, part by part (bench/run_all.py row (c)).

    python bench/scaling_calibration.py [--steps 64] [--log-every 4]

Model of a data-parallel CPU step (ZeRO-0, p ranks on one machine, one torch thread each):
  step_p = compute_p + wait_p + allreduce_p + other_p
  compute_p    compute_1 * (1 + (share_p - 1) * f) + what Ray's processes take from the workers
  compute_1    the 1-worker run's train_step (forwards, backwards, Adam), measured inside the worker
  share_p      how much slower the same bare step gets when p processes run it at once, with no
               communication (shared cores, caches and memory bandwidth, and Ray's own processes on
               the same cores): p bare loops (bench/step_bench.py's networks) in p 1-CPU Ray workers
               started together / one alone
  f            the fraction of a step the other ranks compute too (compute_p / step_p, a fixed point):
               a rank that waits or communicates leaves the cores to the others
  ray_cores    the cores Ray's own processes keep busy (machine CPU seconds - the workers', per wall
               second; any other process on the machine counts too), from the 1-worker run; beyond
               what the bare loops in Ray workers already saw, they slow the workers only beyond the
               core time the workers leave idle in collectives, p * (wait_p + allreduce_p)
  wait_p       waiting on the slower rank at each of the step's 3 sync points (batch all-reduce, G and D
               gradient all-reduces): for each segment between them, E[max over ranks] - E[own] of
               the segment times of the p concurrent bare loops, summed
  allreduce_p  a ring all-reduce of each engine's fp32 gradients, 2 alpha + N b / B, alpha and B fitted
               from gloo on 127.0.0.1, plus DeepSpeed's own cost per call (its allreduce_gradients
               minus the raw all-reduce of the same buffer), all measured on 2 processes without Ray
  other_p      the loop around train_step (data, loss windows, reports): the 1-worker step - its
               train_step, times share_p, plus the latency of the per-step batch all-reduce
Every input comes from the 1-worker run or from runs without Ray Train or DeepSpeed's trainer (bare loops,
collectives); the 2-worker runs (one with dist.profile_steps for the parts, one without, which is the step
being predicted) only check it.
"""

from __future__ import annotations

import argparse
import itertools
import os
import queue as queue_module
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
for key, value in {"DS_ACCELERATOR": "cpu", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled",
                   "GLOO_SOCKET_IFNAME": "lo", "RAY_DEDUP_LOGS": "1"}.items():
    os.environ.setdefault(key, value)

import torch  # noqa: E402

from crossnet_dist.ports import free_port  # noqa: E402


def segmented_bare_loop(cfg, steps: int, warmup: int = 2) -> list[tuple[float, float, float]]:
    """bench/step_bench.py's bare step timed in the three segments a data-parallel step has between
    its sync points (up to the G all-reduce, up to the D all-reduce, up to the next batch all-reduce)."""
    from bench.step_bench import bare_loop

    segments: list[tuple[float, float, float]] = []
    bare_loop(cfg, steps, warmup=warmup, segments=segments)
    return segments


def concurrent_bare_steps(cfg, steps: int, procs: int) -> list[list[tuple[float, float, float]]]:
    """Per-step segment times of `procs` bare loops run at once, each in a 1-CPU Ray worker process
    with one thread, as Ray Train's workers are (so Ray's own processes on the same cores are there
    too). They start together once every one has warmed up (a gate actor); only the steps that ran
    while all of them ran are kept."""
    import ray

    @ray.remote(num_cpus=0)
    class Gate:
        def __init__(self, n: int):
            self.n, self.arrived = n, 0

        def arrive(self) -> None:
            self.arrived += 1

        def open(self) -> bool:
            return self.arrived >= self.n

    @ray.remote(num_cpus=1)
    def bare(repo: str, cfg, steps: int, gate):
        sys.path.insert(0, repo)
        torch.set_num_threads(1)
        from bench.scaling_calibration import segmented_bare_loop

        segmented_bare_loop(cfg, 1)  # imports and first-call costs before the common start
        ray.get(gate.arrive.remote())
        while not ray.get(gate.open.remote()):
            time.sleep(0.002)
        t0 = time.time()
        times = segmented_bare_loop(cfg, steps, warmup=0)
        return t0, time.time(), times

    gate = Gate.remote(procs)
    runs = ray.get([bare.remote(str(REPO), cfg, steps, gate) for _ in range(procs)])
    first_end = min(end for _, end, _ in runs)
    out = []
    for start, _, times in runs:  # only the steps that ran while every loop still ran
        ends = itertools.accumulate(sum(seg) for seg in times)
        out.append([seg for seg, end in zip(times, ends) if start + end <= first_end])
    n = min(map(len, out))
    if n < steps // 2:
        raise RuntimeError(f"the {procs} bare loops overlapped for only {n} of {steps} steps")
    return [times[:n] for times in out]


def bare_contention(cfg, steps: int, rounds: int = 2) -> tuple[list[float], float]:
    """(shares, imbalance). Each round times one bare loop alone, then 2 at once: its share is the
    median step of the pair / the median step alone (this VM's speed drifts by 10-20% over minutes,
    so each share compares runs seconds apart). imbalance: the waiting that synchronising the pair at
    each segment boundary would cost, the mean over steps of the sum over segments of max(a, b) - (a + b) / 2."""
    total = lambda seg: sum(seg)  # noqa: E731
    shares, imbalances = [], []
    for _ in range(rounds):
        (alone,) = concurrent_bare_steps(cfg, steps, 1)
        a, b = concurrent_bare_steps(cfg, steps, 2)
        shares.append(statistics.median(map(total, a + b)) / statistics.median(map(total, alone)))
        imbalances.append(statistics.fmean(sum(max(x, y) - (x + y) / 2 for x, y in zip(sa, sb)) for sa, sb in zip(a, b)))
    return shares, statistics.fmean(imbalances)


def _probe_worker(rank: int, port: int, cfg, repeats: int, queue) -> None:
    sys.path.insert(0, str(REPO))
    import torch.distributed as tdist
    from torch._utils import _flatten_dense_tensors

    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "LOCAL_RANK": str(rank),
                       "WORLD_SIZE": "2", "GLOO_SOCKET_IFNAME": "lo"})
    torch.set_num_threads(1)
    tdist.init_process_group("gloo", rank=rank, world_size=2)
    from crossnet_dist.distributed.engines import build_engine
    from crossnet_dist.methods import build_method

    method = build_method(cfg)
    times: dict[str, list[float]] = {}

    def timed(key, fn):
        tdist.barrier()
        t0 = time.perf_counter()
        fn()
        times.setdefault(key, []).append(time.perf_counter() - t0)

    one = torch.ones(1)
    for name in ("generators", "discriminators"):
        group = build_engine(getattr(method, name), name, cfg.optim, cfg.dist, cfg.data.batch_size)
        group.engine.enable_backward_allreduce = False
        grads = []
        for p in getattr(method, name).parameters():
            p.grad = torch.randn_like(p)
            grads.append(p.grad)
        flat = _flatten_dense_tensors(grads)
        for _ in range(repeats):
            timed(f"{name}/deepspeed", group.engine.allreduce_gradients)
            timed(f"{name}/raw", lambda: tdist.all_reduce(flat))  # noqa: B023 - called in this iteration
            timed("latency", lambda: tdist.all_reduce(one))
        times[f"{name}/elements"] = [float(flat.numel())]
    if rank == 0:
        queue.put({k: statistics.median(v) for k, v in times.items()})
    tdist.destroy_process_group()


def collective_probe(cfg, repeats: int = 30) -> dict:
    """Medians, on 2 processes without Ray or compute: DeepSpeed's all-reduce of each engine's
    gradients as the trainer calls it (ZeRO-0 `allreduce_gradients`: bucket flatten, all-reduce,
    average, copy back), the raw gloo all-reduce of the same flat buffer, and a 1-element all-reduce."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    cfg = cfg.copy()
    cfg.dist.zero_stage = 0
    procs = [ctx.Process(target=_probe_worker, args=(r, port, cfg, repeats, queue)) for r in range(2)]
    for pr in procs:
        pr.start()
    deadline = time.monotonic() + 600
    while True:  # a worker that dies (e.g. its port was taken) fails the probe now, not after 10 minutes
        try:
            out = queue.get(timeout=1)
            break
        except queue_module.Empty:
            dead = [pr.exitcode for pr in procs if pr.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                for pr in procs:
                    pr.kill()
                raise RuntimeError(f"collective probe failed: worker exit codes {[pr.exitcode for pr in procs]}") from None
    for pr in procs:
        pr.join(timeout=60)
    return out


def allreduce_model(probe: dict) -> dict:
    """Ring all-reduce on 2 ranks, t = 2 alpha + N b / B, alpha from the 1-element all-reduce, B fitted on
    the generators' buffer; DeepSpeed's own cost per call (deepspeed - raw) added per engine."""
    alpha = probe["latency"] / 2
    g_bytes = probe["generators/elements"] * 4
    bw = g_bytes / max(probe["generators/raw"] - 2 * alpha, 1e-9)
    ring = {name: 2 * alpha + probe[f"{name}/elements"] * 4 / bw for name in ("generators", "discriminators")}
    overhead = {name: probe[f"{name}/deepspeed"] - probe[f"{name}/raw"] for name in ring}
    return {
        "alpha_s": alpha,
        "bandwidth_Bps": bw,
        "ring_s": sum(ring.values()),
        "deepspeed_overhead_s": sum(overhead.values()),
        "ring_check_D": ring["discriminators"] / probe["discriminators/raw"],
        "total_s": sum(ring.values()) + sum(overhead.values()),
    }


def predict(one: dict, share: float, imbalance: float, comm: dict, ranks: int = 2) -> dict:
    """The model's 2-worker step from the 1-worker parts and the runs without Ray.

    Ray's processes (ray_cores, measured in the 1-worker run) take CPU from the workers only beyond the
    core time the workers leave idle while they block in collectives: ranks x (wait + all-reduce)."""
    p = one["parts"]
    ray_cores = max(0.0, (p["machine_cpu_s"] - p["workers_cpu_s"]) / p["step_time_s"])
    other_1 = max(0.0, one["step_s"] - p["train_step_s"] - p["part_batch_sync_s"])
    wait = imbalance
    allreduce = comm["total_s"]
    # the ranks slow each other down only while both compute: for the fraction f = compute / step of
    # the time the other rank computes too (a fixed point; the bare pair computes all the time)
    compute, other = p["train_step_s"] * share, other_1 * share + 2 * comm["alpha_s"]  # + the batch all-reduce
    for _ in range(50):
        f = compute / (compute + wait + allreduce + other)
        compute = p["train_step_s"] * (1 + (share - 1) * f)
    step = compute + wait + allreduce + other
    stolen = max(0.0, ray_cores * step - ranks * (wait + allreduce)) / ranks
    compute += stolen
    return {"compute": compute, "wait": wait, "allreduce": allreduce, "other": other, "ray_cores": ray_cores,
            "ray_stolen": stolen, "step": compute + wait + allreduce + other}


def measured_parts(run: dict, latency_s: float) -> dict:
    """The same parts, measured inside the workers of a profiled run. wait: at the 2 barriers before
    the all-reduces and in the batch all-reduce, less the 3 collectives' own latency (`latency_s`, a
    1-element all-reduce); the batch all-reduce's latency is counted in other, as in the model (the
    unprofiled step has no barriers)."""
    p = run["parts"]
    allreduce = p["part_allreduce_s"]
    wait = max(0.0, p["part_wait_s"] + p["part_batch_sync_s"] - 3 * latency_s)
    return {"compute": p["train_step_s"] - p["part_wait_s"] - allreduce, "wait": wait, "allreduce": allreduce,
            "other": run["step_s"] - p["train_step_s"] - p["part_batch_sync_s"] + latency_s,
            "ray_cores": max(0.0, (p["machine_cpu_s"] - p["workers_cpu_s"]) / p["step_time_s"]), "step": run["step_s"]}


def _mean_run(a: dict, b: dict) -> dict:
    return {"step_s": (a["step_s"] + b["step_s"]) / 2, "parts": {k: (a["parts"][k] + b["parts"][k]) / 2 for k in a["parts"]}}


def calibrate(storage: str, ns, cfg, bare_steps: int = 40, other_steps: tuple[float, ...] = ()) -> dict:
    """Runs (on a connected Ray) the inputs and the checks in an A-B-B-A order, so that a drift of the
    machine's speed during the minutes they take cancels: 1-worker run, bare loops, collectives,
    2-worker run (the step predicted), 2-worker profiled run (its parts), bare loops, 1-worker run.
    The step predicted is the median of the plain 2-worker runs (one before the profiled run, one after,
    plus `other_steps` measured by the caller): one run alone moves by up to 50% on this VM.
    Returns the model's parts (from the means of the two input runs), the measured ones and the step."""
    from bench.train_scaling import run as dist_run

    one_a = dist_run("cal-w1-a", storage, ns, 1, 0, profile=True)
    contention = [bare_contention(cfg, bare_steps)]
    comm = allreduce_model(collective_probe(cfg))
    plain = [dist_run("cal-w2-a", storage, ns, 2, 0)["step_s"]]
    profiled = dist_run("cal-w2-profiled", storage, ns, 2, 0, profile=True)
    plain.append(dist_run("cal-w2-b", storage, ns, 2, 0)["step_s"])
    plain += list(other_steps)
    contention.append(bare_contention(cfg, bare_steps))
    one_b = dist_run("cal-w1-b", storage, ns, 1, 0, profile=True)
    shares = contention[0][0] + contention[1][0]
    share, wait = statistics.median(shares), statistics.fmean(c[1] for c in contention)
    model = predict(_mean_run(one_a, one_b), share, wait, comm)
    return {"one": [one_a["step_s"], one_b["step_s"]], "model": model, "plain_step": statistics.median(plain),
            "plain_steps": plain,
            "parts_1": _mean_run(one_a, one_b)["parts"], "parts_2": profiled["parts"],
            "measured": measured_parts(profiled, 2 * comm["alpha_s"]),
            "inputs": {"share": share, "shares": shares, "gloo_GBps": comm["bandwidth_Bps"] / 1e9,
                       "gloo_alpha_us": comm["alpha_s"] * 1e6, "comm": comm, "imbalance_s": wait}}


def rows(cal: dict) -> list[tuple[str, str, str, str]]:
    """(row, value, baseline, ratio) for bench/run_all.py: the prediction / the measured 2-worker step,
    then each part, model vs measured inside the workers."""
    m, w, inp = cal["model"], cal["measured"], cal["inputs"]
    out = [(f"(c) model: predicted 2-worker step / measured (share {inp['share']:.2f}, other procs {m['ray_cores']:.2f} cores, "
            f"gloo {inp['gloo_GBps']:.2f} GB/s {inp['gloo_alpha_us']:.0f} us)", f"{m['step'] * 1e3:.1f} ms",
            f"{cal['plain_step'] * 1e3:.1f} ms", f"{m['step'] / cal['plain_step']:.3f}")]
    for part in ("compute", "wait", "allreduce", "other"):
        out.append((f"(c)   part {part}: model / measured in the 2 workers", f"{m[part] * 1e3:.1f} ms",
                     f"{w[part] * 1e3:.1f} ms", f"{m[part] / w[part]:.3f}" if w[part] > 0 else "-"))
    runs = ", ".join(f"{t * 1e3:.0f}" for t in cal["plain_steps"])
    out.append((f"(c)   profiled 2-worker step / unprofiled (their median; runs {runs} ms)", f"{w['step'] * 1e3:.1f} ms",
                f"{cal['plain_step'] * 1e3:.1f} ms", f"{w['step'] / cal['plain_step']:.3f}"))
    out.append(("(c)   Ray's processes, cores busy: 2-worker run / 1-worker run", f"{w['ray_cores']:.2f}",
                f"{m['ray_cores']:.2f}", f"{w['ray_cores'] / m['ray_cores']:.2f}" if m["ray_cores"] > 0 else "-"))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--log-every", type=int, default=4)
    args = parser.parse_args()
    import ray

    from bench.step_bench import bench_config
    from crossnet_dist.distributed.driver import connect_ray

    ns = argparse.Namespace(steps=args.steps, log_every=args.log_every, image_size=32, gen_channels=16, batch_size=4,
                            gpu=False)
    started = connect_ray(None, num_cpus=os.cpu_count())
    try:
        cal = calibrate(tempfile.mkdtemp(prefix="crossnet-cal-"), ns, bench_config())
    finally:
        if started:
            ray.shutdown()
    print(f"1-worker runs (before, after): {cal['one'][0] * 1e3:.1f}, {cal['one'][1] * 1e3:.1f} ms; "
          f"shares of the bare rounds: {', '.join(f'{x:.2f}' for x in cal['inputs']['shares'])}")
    for row in rows(cal):
        print(" | ".join(row))
    for n in (1, 2):
        print(f"{n}-worker parts per step: " + ", ".join(f"{k} {v * 1e3:.1f}" for k, v in cal[f"parts_{n}"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
