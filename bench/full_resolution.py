"""Full-resolution translation of a large photo: time and peak memory, tiled against the image's size.

    python bench/full_resolution.py [--width 4000] [--height 3000] [--tile 512] [--overlap 32] [--threads 2]

The paper-size CrossNet generator (256-px model, ngf 64, 9 blocks; random weights: the cost does not
depend on them) translates a photo upscaled to WIDTHxHEIGHT in tiles (crossnet_dist/full_resolution.py).
Peak memory is the process's resident set, sampled every 10 ms, above what it held before; printed
beside the image's own float32 input + output buffers and one tile's forward alone, measured in the same
run.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import torch  # noqa: E402


class PeakRSS:
    def __init__(self):
        self.proc, self.peak, self.stop = psutil.Process(), 0, threading.Event()

    def __enter__(self):
        self.base = self.proc.memory_info().rss
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def gib(self) -> float:
        return (self.peak - self.base) / 2**30


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from crossnet_dist.config import load_config
    from crossnet_dist.full_resolution import translate_tiled, translate_whole
    from crossnet_dist.methods import build_method
    from tests.helpers import sample_photo

    torch.manual_seed(0)
    method = build_method(load_config("crossnet")).eval()
    photo = np.asarray(sample_photo("china.jpg").resize((args.width, args.height))).copy()
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 127.5 - 1
    with PeakRSS() as one_tile:
        t0 = time.perf_counter()
        translate_whole(method, x[..., : args.tile, : args.tile], "a2b", 4)
        tile_s = time.perf_counter() - t0
    with PeakRSS() as tiled:
        t0 = time.perf_counter()
        y = translate_tiled(method, x, "a2b", 4, tile=args.tile, overlap=args.overlap)
        tiled_s = time.perf_counter() - t0
    assert y.shape == x.shape and torch.isfinite(y).all()
    buffers = 2 * x.numel() * 4 / 2**30
    from crossnet_dist.full_resolution import tile_starts

    n_tiles = len(tile_starts(args.height, args.tile, args.overlap)) * len(tile_starts(args.width, args.tile, args.overlap))
    print(f"{args.width}x{args.height} on {args.threads} threads, tiles {args.tile} px (overlap {args.overlap}): "
          f"{tiled_s:.1f} s, peak +{tiled.gib:.2f} GiB; one tile alone {tile_s:.2f} s, +{one_tile.gib:.2f} GiB; "
          f"the image's input + output buffers {buffers:.2f} GiB")
    print(f"ratios: peak / (buffers + one tile) {tiled.gib / (buffers + one_tile.gib):.2f}; "
          f"time / ({n_tiles} tiles x one tile) {tiled_s / (n_tiles * tile_s):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
