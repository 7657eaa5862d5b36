"""What runs a model replica's forward (`serve.backend`): eager torch or ONNX Runtime.

Both take decoded RGB PIL images and give translated PIL images of the same sizes, so the
deployment around them (batching, decoding, encoding, errors) is the same:

- torch: a serving checkpoint (generator.pt, or a best-pointer folder); both directions; resolution
  model or full, tiled above serve.full_resolution_tile px.
- onnxruntime: files written by `crossnet export --format onnx`, one per direction: an .onnx file, or
  a folder (a best pointer) holding a2b.onnx and/or b2a.onnx; CPU only. resolution model, and full
  for dynamic-size exports up to serve.full_resolution_tile px per side (tiles share whole-image
  normalisation statistics, which an exported graph cannot gather: larger images need backend torch).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

DIRECTIONS = ("a2b", "b2a")


class BackendRefusal(ValueError):
    """A request this backend cannot translate (HTTP 400 with `error` and this message)."""

    def __init__(self, error: str, detail: str):
        super().__init__(detail)
        self.error = error


class TorchBackend:
    name = "torch"

    def __init__(self, checkpoint: str, settings: dict[str, Any], device: str):
        from crossnet_dist.checkpoints.source import resolve_checkpoint
        from crossnet_dist.checkpoints.translator import load_translator
        from crossnet_dist.translate import FullResolution, TranslateOptionError

        self.device = device
        source = resolve_checkpoint(checkpoint, settings.get("storage"))
        try:
            self.revision = content_revision([source.local_path])
            self.facts: dict[str, Any] = {}
            self.method, cfg = load_translator(source.local_path, device, self.facts)
        finally:
            source.discard_copy()
        self.data_cfg = cfg.data  # where the held-out examples of the web page come from
        self.url, self.pointer, self.method_name = source.url, source.pointer, cfg.method
        self.image_size = int(cfg.model.image_size)
        self.directions = DIRECTIONS
        try:
            self.full, self.full_refused = FullResolution.for_model(
                self.method, cfg.model, tile=int(settings["full_resolution_tile"])), None
        except TranslateOptionError as err:
            self.full, self.full_refused = None, str(err)
        self.resolutions = ("model", "full") if self.full is not None else ("model",)

    def check(self, direction: str, resolution: str, size: tuple[int, int]) -> None:
        if resolution == "full" and self.full is None:
            raise BackendRefusal("bad_resolution", self.full_refused)

    def translate(self, images: list[Image.Image], direction: str, resolution: str) -> list[Image.Image]:
        from crossnet_dist.translate import translate_images

        return translate_images(self.method, images, direction, self.image_size, self.device,
                                self.full if resolution == "full" else None)


class OnnxBackend:
    name = "onnxruntime"

    def __init__(self, checkpoint: str, settings: dict[str, Any], device: str):
        import onnxruntime as ort

        from crossnet_dist.checkpoints.files import CheckpointError
        from crossnet_dist.export.files import read_onnx_metadata

        self.device = "cpu"
        self.tile = int(settings["full_resolution_tile"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(settings["cpus_per_replica"]))
        options.inter_op_num_threads = 1
        self.sessions: dict[str, Any] = {}
        self.meta: dict[str, dict[str, Any]] = {}
        sources = _exported_files(checkpoint, settings.get("storage"))
        self.revision = content_revision([source.local_path for source in sources])
        for source in sources:
            try:
                session = ort.InferenceSession(str(source.local_path), options, providers=["CPUExecutionProvider"])
            except Exception as err:  # noqa: BLE001 - onnxruntime raises its own untyped errors
                raise CheckpointError(f"{source.url} is not a readable ONNX model: {str(err).splitlines()[0]}") from None
            finally:
                source.discard_copy()
            meta = read_onnx_metadata(session, source.url)
            named = source.url.rsplit("/", 1)[-1].removesuffix(".onnx")
            if meta["direction"] in self.sessions or (named in DIRECTIONS and named != meta["direction"]):
                raise CheckpointError(f"{source.url} holds the {meta['direction']} translator: name each "
                                      "direction's file after it (a2b.onnx, b2a.onnx)")
            self.sessions[meta["direction"]], self.meta[meta["direction"]] = session, meta
        first = next(iter(self.meta.values()))
        if len({(m["method"], m["image_size"], m.get("checkpoint")) for m in self.meta.values()}) > 1:
            raise CheckpointError(f"{checkpoint}: its a2b.onnx and b2a.onnx come from different checkpoints "
                                  f"({', '.join(str(m.get('checkpoint')) for m in self.meta.values())})")
        self.facts = {"step": first.get("step"), "ema": first.get("ema")}
        self.data_cfg = None  # an exported file carries no data set
        self.url = ", ".join(source.url for source in sources)
        self.pointer = sources[0].pointer
        self.method_name, self.image_size = first["method"], int(first["image_size"])
        self.directions = tuple(d for d in DIRECTIONS if d in self.sessions)
        dynamic = all(m["dynamic_size"] for m in self.meta.values())
        self.resolutions = ("model", "full") if dynamic else ("model",)

    def check(self, direction: str, resolution: str, size: tuple[int, int]) -> None:
        if direction not in self.sessions:
            raise BackendRefusal("bad_direction", f"this endpoint serves {', '.join(self.directions)} only "
                                 "(its exported ONNX files hold no other direction)")
        if resolution == "full":
            if "full" not in self.resolutions:
                raise BackendRefusal("bad_resolution", f"the exported {self.method_name} translator takes its "
                                     f"training size only: use resolution 'model'")
            if max(size) > self.tile:
                raise BackendRefusal("bad_resolution", f"backend onnxruntime translates full resolution up to "
                                     f"{self.tile} px a side (serve.full_resolution_tile); a {size[0]}x{size[1]} "
                                     "image needs tiling: use resolution 'model' or an endpoint with backend torch")

    def translate(self, images: list[Image.Image], direction: str, resolution: str) -> list[Image.Image]:
        session = self.sessions[direction]
        if resolution == "full":
            min_side = int(self.meta[direction]["min_side"])
            return [_from_batch(session.run(None, {"image": _to_batch([im], min_side)})[0], [im.size])[0]
                    for im in images]
        side = self.image_size
        resized = [im.resize((side, side), Image.Resampling.BICUBIC) for im in images]
        out = _from_batch(session.run(None, {"image": _to_batch(resized, 0)})[0], [(side, side)] * len(images))
        return [y.resize(im.size, Image.Resampling.BICUBIC) for y, im in zip(out, images)]


def content_revision(paths) -> str:
    """The first 12 hex digits of the SHA-256 of the files' bytes: which model a replica serves (the
    same path, a campaign's best/ folder, holds another model after the campaign improves on it)."""
    import hashlib

    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


def build_backend(checkpoint: str, settings: dict[str, Any], device: str):
    backend = settings.get("backend", "torch")
    return (OnnxBackend if backend == "onnxruntime" else TorchBackend)(checkpoint, settings, device)


def _exported_files(checkpoint: str, storage_cfg: Any) -> list:
    """One .onnx file, or a folder's a2b.onnx and b2a.onnx (at least one)."""
    from crossnet_dist.checkpoints.files import CheckpointError
    from crossnet_dist.checkpoints.source import resolve_checkpoint

    if str(checkpoint).rstrip("/").endswith(".onnx"):
        return [resolve_checkpoint(checkpoint, storage_cfg, file_name="")]
    found = []
    for direction in DIRECTIONS:
        try:
            found.append(resolve_checkpoint(checkpoint, storage_cfg, file_name=f"{direction}.onnx"))
        except CheckpointError as err:
            if "has no" not in str(err):
                raise
    if not found:
        raise CheckpointError(f"{checkpoint} holds no a2b.onnx or b2a.onnx (serve.backend=onnxruntime serves "
                              "files written by `crossnet export --format onnx`)")
    return found


def _to_batch(images: list[Image.Image], min_side: int) -> np.ndarray:
    """N x 3 x H x W float32 in [0, 1]; a side below `min_side` edge-padded up to it (bottom, right)."""
    arrays = []
    for im in images:
        a = np.asarray(im, dtype=np.float32) / 255.0
        pad_h, pad_w = max(0, min_side - a.shape[0]), max(0, min_side - a.shape[1])
        if pad_h or pad_w:
            a = np.pad(a, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        arrays.append(a.transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(arrays))


def _from_batch(batch: np.ndarray, sizes: list[tuple[int, int]]) -> list[Image.Image]:
    """PIL images cropped to `sizes` ((width, height) each) from an N x 3 x H x W batch in [0, 1]."""
    out = []
    for y, (width, height) in zip(batch, sizes):
        pixels = np.rint(np.clip(y[:, :height, :width], 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
        out.append(Image.fromarray(np.ascontiguousarray(pixels), "RGB"))
    return out
