"""`crossnet export`: a checkpoint's translator for one direction as an ONNX or TorchScript file.

Each file carries what a runtime needs to use it, as JSON under the key "crossnet" (ONNX
metadata_props; a TorchScript file's extra file crossnet.json): the method, the direction, the
training size, whether height and width are dynamic and their minimum, the value range, and the
checkpoint, step and EMA flag it came from. `read_onnx_metadata` reads it back with ONNX Runtime only.
The file is written under a temporary name and renamed, so a cut-short export never leaves a file
under the final name; s3:// destinations get the finished file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from crossnet_dist.export.graph import FORMATS, INPUT_NAME, ExportError, PortableTranslator, TranslatorCore

METADATA_KEY = "crossnet"
EXPORT_FORMAT = "crossnet-exported-translator"
EXPORT_VERSION = 1
TORCHSCRIPT_METADATA_FILE = "crossnet.json"


@dataclass
class ExportReport:
    out: str
    metadata: dict[str, Any]
    max_abs_diff: float  # |exported - eager| on the example image, in [0, 1] units
    example_size: tuple[int, int]  # (height, width) of that check


def export_checkpoint(checkpoint: str, fmt: str, direction: str, out: str, storage_cfg: Any = None,
                      check_size: tuple[int, int] | None = None) -> ExportReport:
    """Exports `direction` of `checkpoint` (a generator.pt or best-pointer folder, local or s3://) to
    `out` and checks the written file against the eager model on one image of `check_size` (default:
    a non-square size that is not a multiple of the network's stride, for the dynamic translators)."""
    from crossnet_dist.checkpoints.source import resolve_checkpoint
    from crossnet_dist.checkpoints.translator import load_translator
    from crossnet_dist.translate import FullResolution, TranslateOptionError

    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    check_target(out, checkpoint)  # before any export work
    source = resolve_checkpoint(checkpoint, storage_cfg)
    try:
        payload_facts: dict[str, Any] = {}
        method, cfg = load_translator(source.local_path, facts=payload_facts)
    finally:
        source.discard_copy()
    try:
        full = FullResolution.for_model(method, cfg.model)
    except TranslateOptionError:
        full = None  # exported at the training size
    module = PortableTranslator(TranslatorCore(method, direction), full.multiple if full else 1).eval()
    image_size = int(cfg.model.image_size)
    min_side = max(full.min_side, full.multiple) if full else image_size
    if check_size is None:
        check_size = (max(min_side, image_size) + 3, max(min_side, image_size) + 17) if full else (image_size, image_size)
    if full is None and tuple(check_size) != (image_size, image_size):
        raise ExportError(f"a {method.name} translator is exported at its training size {image_size}x{image_size}")
    metadata = {
        "format": EXPORT_FORMAT, "version": EXPORT_VERSION, "method": method.name, "direction": direction,
        "image_size": image_size, "dynamic_size": full is not None, "min_side": min_side,
        "input": {"name": INPUT_NAME, "dtype": "float32", "layout": "NCHW", "channels": "RGB", "range": [0, 1]},
        "checkpoint": source.url, "step": payload_facts.get("step"), "ema": payload_facts.get("ema"),
        "torch": torch.__version__,
    }
    torch.manual_seed(0)
    example = torch.rand(1, 3, *check_size)
    with torch.no_grad():
        expected = module(example).numpy()
    with _local_target(out, storage_cfg) as local:
        if fmt == "onnx":
            from crossnet_dist.export.graph import export_onnx

            export_onnx(module, example, min_side if full else None, local, {METADATA_KEY: json.dumps(metadata)})
            got = run_onnx(local, example.numpy())
        else:
            from crossnet_dist.export.graph import export_torchscript

            export_torchscript(module, example, local, {TORCHSCRIPT_METADATA_FILE: json.dumps(metadata)})
            got = run_torchscript(local, example)
    return ExportReport(out, metadata, float(abs(got - expected).max()), tuple(check_size))


def check_target(out: str, checkpoint: str) -> None:
    """An ExportError naming `out` unless it can name a new or replaceable file: not empty, not a
    folder, not under a file, not the checkpoint being exported."""
    from crossnet_dist.storage import is_s3_url

    if not str(out).strip():
        raise ExportError("--out is empty: name the file to write, e.g. --out translator.onnx")
    if is_s3_url(str(out)):
        if str(out).rstrip("/") == str(checkpoint).rstrip("/") or str(out).endswith("/"):
            raise ExportError(f"--out {out}: name a new object, not a folder or the checkpoint being exported")
        return
    target = Path(out).expanduser()
    if target.is_dir():
        raise ExportError(f"--out {out} is a folder: name a file in it, e.g. {target / 'translator.onnx'}")
    for parent in target.parents:
        if parent.exists() and not parent.is_dir():
            raise ExportError(f"--out {out}: {parent} is a file, not a folder")
    if not is_s3_url(str(checkpoint)) and target.exists() and target.resolve() == Path(checkpoint).expanduser().resolve():
        raise ExportError(f"--out {out} is the checkpoint being exported: it would be overwritten; choose another name")


def run_onnx(path: str, image):
    """The exported ONNX translation of `image` (float32 N x 3 x H x W in [0, 1]) with ONNX Runtime."""
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT_NAME: image})[0]


def run_torchscript(path: str, image: torch.Tensor):
    from crossnet_dist.export.graph import jit_quietly

    with torch.no_grad(), jit_quietly():
        return torch.jit.load(path, map_location="cpu")(image).numpy()


def read_onnx_metadata(session, name: str) -> dict[str, Any]:
    """The "crossnet" metadata of an ONNX Runtime session's model (read from file `name`); a
    CheckpointError naming the file if it has none or a newer version."""
    from crossnet_dist.checkpoints.files import CheckpointError

    raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if raw is None:
        raise CheckpointError(f"{name} has no {METADATA_KEY!r} metadata: it was not written by `crossnet export`")
    metadata = json.loads(raw)
    if metadata.get("format") != EXPORT_FORMAT or int(metadata.get("version", 0)) > EXPORT_VERSION:
        raise CheckpointError(f"{name}: metadata {metadata.get('format')!r} version {metadata.get('version')} "
                              f"is not {EXPORT_FORMAT} version <= {EXPORT_VERSION}")
    return metadata


class _local_target:
    """A temporary local file for the exporter; on success renamed to `out` or uploaded to it."""

    def __init__(self, out: str, storage_cfg: Any):
        from crossnet_dist.storage import is_s3_url

        self.out, self.storage_cfg, self.remote = str(out), storage_cfg, is_s3_url(str(out))
        folder = Path(tempfile.gettempdir()) if self.remote else Path(self.out).expanduser().resolve().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, self.tmp = tempfile.mkstemp(dir=folder, prefix=".crossnet-export-", suffix=".part")
        except OSError as err:
            raise ExportError(f"cannot write {self.out}: {err.strerror or err}") from None
        os.close(fd)

    def __enter__(self) -> str:
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                if self.remote:
                    from crossnet_dist.storage import opened

                    with opened(self.out, self.storage_cfg) as (fs, root):
                        fs.put_file(self.tmp, root)
                else:
                    umask = os.umask(0)
                    os.umask(umask)
                    os.chmod(self.tmp, 0o666 & ~umask)  # mkstemp's 0600 is for the unfinished file only
                    try:
                        os.replace(self.tmp, Path(self.out).expanduser())
                    except OSError as err:
                        raise ExportError(f"cannot write {self.out}: {err.strerror or err}") from None
        finally:
            Path(self.tmp).unlink(missing_ok=True)
