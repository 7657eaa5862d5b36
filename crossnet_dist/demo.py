"""`make demo`: the main job end to end on embedded defaults, on one machine.

A local S3 server (SeaweedFS on 127.0.0.1) holds the data and the run; a local Ray on
127.0.0.1 trains CrossNet with 2 workers and DeepSpeed ZeRO-2 streaming from the bucket;
then the trained translator translates held-out images offline, is evaluated (HTML report),
and is served over HTTP by Ray Serve. Every step is the real `crossnet` command, printed
before it runs, so the demo doubles as a tour of the command line.

    python -m crossnet_dist.demo [--steps N] [--images N] [--keep-server]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess  # nosec B404 - starts this package's own CLI, no shell
import sys
import time
from pathlib import Path

BUCKET = "crossnet"
DATA_URL = f"s3://{BUCKET}/emoji"
RUNS_URL = f"s3://{BUCKET}/runs"
CONFIG = "jobs/configs/demo.yaml"
DEFAULT_STEPS = 2000
# The paired ceiling (bench/paired_ceiling.py: the recipe's generators trained on the true training pairs
# for as many steps, chosen on val) on the emoji test pairs, as recorded in bench/RESULTS.md ("Paired
# ceiling"); a later `make bench-quality` run's own figure (runs/bench-quality/quality.json) replaces it.
RECORDED_CEILING = {"source": "bench/RESULTS.md", "step": 2000, "a2b": 0.792, "b2a": 0.735}


def run(title: str, args: list[str], env: dict[str, str], capture: bool = False) -> str:
    print(f"\n=== {title}\n$ crossnet {' '.join(shlex.quote(a) for a in args)}", flush=True)
    started = time.perf_counter()
    proc = subprocess.run(  # nosec B603 - this interpreter running this package's CLI, argv list
        [sys.executable, "-m", "crossnet_dist", *args], env=env, text=True,
        stdout=subprocess.PIPE if capture else None,
    )
    if capture and proc.stdout:
        print(proc.stdout, end="", flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"demo step '{title}' failed with exit code {proc.returncode}")
    print(f"--- {title}: {time.perf_counter() - started:.1f} s", flush=True)
    return proc.stdout or ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crossnet_dist.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"training steps (default {DEFAULT_STEPS})")
    parser.add_argument("--images", type=int, default=0, help="emoji to prepare, spread over the set (default 0: all 3,786)")
    parser.add_argument("--out", default="runs/demo", help="local folder for outputs (default runs/demo)")
    args = parser.parse_args(argv)

    from crossnet_dist.storage import S3Server

    started = time.perf_counter()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    run_name = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    with S3Server(out / "s3", buckets=[BUCKET]) as s3:
        env = {**os.environ, **s3.env(), "PYTHONUNBUFFERED": "1"}
        print(f"local S3 server (SeaweedFS) at {s3.endpoint_url}, bucket {BUCKET}", flush=True)
        run("prepare the emoji data set (Google -> Twitter) in the bucket",
            ["data", "prepare", "emoji", *(["--limit", str(args.images)] if args.images else []), "--out", DATA_URL], env)
        run("what is in the bucket", ["data", "ls", DATA_URL], env)
        run("train CrossNet: Ray Train, 2 workers, DeepSpeed ZeRO-2, streaming from S3",
            ["train", CONFIG, f"data.root={DATA_URL}", f"dist.storage_path={RUNS_URL}",
             f"dist.run_name={run_name}", f"train.max_steps={args.steps}"], env)
        generator = f"{RUNS_URL}/{run_name}/generator.pt"

        test_a = out / "testA"
        _download_some(s3.filesystem(), f"{BUCKET}/emoji/testA", test_a, count=8)
        run("translate held-out images offline (A -> B)",
            ["translate", "--checkpoint", generator, "--direction", "a2b", str(test_a), "--out", str(out / "translated")],
            env)
        run("evaluate on the held-out test split (offline distances + HTML report)",
            ["eval", "--checkpoint", generator, "--data", DATA_URL, "--out", str(out / "report")], env)
        _serve_and_translate(generator, test_a, out, env)
    print(f"\ndemo done in {(time.perf_counter() - started) / 60:.1f} min: translations in {out / 'translated'}, "
          f"report {out / 'report' / 'index.html'}")
    report = json.loads((out / "report" / "metrics.json").read_text())
    print("\n".join(quality_lines(report["metrics"], ceiling_figures())))
    return 0


def ceiling_figures() -> dict:
    """The paired ceiling's test L1 ratios: the last `make bench-quality` run's, else the recorded ones."""
    bench = Path("runs/bench-quality/quality.json")
    if bench.is_file():
        rows = [r for r in json.loads(bench.read_text()).get("reported", []) if r["method"] == "ceiling"]
        if rows:
            return {"source": str(bench), "step": rows[0]["step"], "a2b": rows[0]["paired_l1_a2b_ratio"],
                    "b2a": rows[0]["paired_l1_b2a_ratio"]}
    return RECORDED_CEILING


def quality_lines(metrics: dict, ceiling: dict) -> list[str]:
    """Each direction between the floor (doing nothing, ratio 1) and the ceiling (trained on the true pairs)."""
    lines = ["quality on the held-out test pairs (ratios to doing nothing: L1 below 1 and SSIM above 1 beat it):"]
    for d, name in (("a2b", "Google -> Twitter"), ("b2a", "Twitter -> Google")):
        if f"paired_l1_{d}_ratio" not in metrics:
            continue
        fd = metrics[f"fd_efflite0_{d}"] / metrics[f"fd_efflite0_{d}_identity_baseline"]
        ceiling_text = (f"; paired ceiling {ceiling[d]:.3f} at step {ceiling['step']} ({ceiling['source']})"
                        if ceiling.get(d) is not None else "")
        lines.append(f"  {d} ({name}): L1 ratio {metrics[f'paired_l1_{d}_ratio']:.3f}{ceiling_text}; SSIM ratio "
                     f"{metrics[f'paired_ssim_{d}_ratio']:.3f}; fd ratio to the untranslated input {fd:.3f}")
    return lines


def _download_some(fs, bucket_path: str, folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for key in sorted(fs.ls(bucket_path, detail=False))[:count]:
        (folder / Path(key).name).write_bytes(fs.cat_file(key))


def _serve_and_translate(generator: str, inputs: Path, out: Path, env: dict[str, str]) -> None:
    """`crossnet serve` in the background, `crossnet translate --endpoint` against it, then Ctrl-C."""
    from crossnet_dist.ports import free_port
    from crossnet_dist.serving.server import wait_ready

    port = free_port()
    args = ["serve", "--checkpoint", generator, "--port", str(port)]
    print(f"\n=== serve the translator over HTTP (Ray Serve on 127.0.0.1:{port})\n$ crossnet {' '.join(args)} &", flush=True)
    server = subprocess.Popen([sys.executable, "-m", "crossnet_dist", *args], env=env)  # nosec B603 - as above
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, token=None, timeout_s=180)
        run("translate over HTTP (B <- A) with the endpoint",
            ["translate", "--endpoint", url, "--direction", "a2b", str(inputs), "--out", str(out / "served")], env)
        print(f"(the endpoint also serves a web page at /: run `crossnet serve --checkpoint {generator}` "
              "with the same AWS_* settings and open http://127.0.0.1:8000/)", flush=True)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
