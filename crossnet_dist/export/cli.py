"""`crossnet export`: one direction of a checkpoint as a self-contained ONNX or TorchScript file."""

from __future__ import annotations

import argparse
import sys


def add_export_parser(subparsers) -> argparse.ArgumentParser:
    export = subparsers.add_parser(
        "export",
        help="export a translator to ONNX or TorchScript",
        description="Write one direction of CHECKPOINT (a generator.pt or a folder holding one; local or s3://) "
        "as a file that runs without this package: ONNX (ONNX Runtime) or TorchScript (torch.jit.load). Input "
        "'image' and output 'translation' are float32 N x 3 x H x W RGB in [0, 1]; CrossNet and CycleGAN "
        "translators take any height and width (padded and cropped inside the graph), the others their training "
        "size. The file is checked against the eager model before the command returns. ONNX is the format "
        "to prefer: PyTorch marks torch.jit deprecated in favour of torch.export.",
    )
    export.add_argument("--checkpoint", required=True, help="generator.pt or a folder containing it (path or s3://)")
    export.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    export.add_argument("--direction", required=True, choices=["a2b", "b2a"])
    export.add_argument("--out", required=True, help="file to write (path or s3:// URL)")
    export.set_defaults(func=run_export)
    return export


def run_export(args: argparse.Namespace) -> int:
    from crossnet_dist.export.files import export_checkpoint
    from crossnet_dist.export.graph import ExportError

    try:
        report = export_checkpoint(args.checkpoint, args.format, args.direction, args.out)
    except ExportError as err:
        print(f"crossnet export: error: {err}", file=sys.stderr)
        return 2
    meta = report.metadata
    sizes = f"any H x W >= {meta['min_side']}" if meta["dynamic_size"] else f"{meta['image_size']}x{meta['image_size']}"
    h, w = report.example_size
    print(f"wrote {report.out}: {meta['method']} {meta['direction']} ({args.format}, {sizes}); "
          f"max |exported - eager| = {report.max_abs_diff:.2g} on a {h}x{w} image")
    return 0
