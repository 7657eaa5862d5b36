"""The model deployment: loads the serving checkpoint once per replica and translates batches.

Requests arrive as raw PNG/JPEG bytes (already header-checked by the ingress) plus a direction.
Each is decoded on its own, then `@serve.batch` gathers up to `serve.max_batch_size` decoded images
(waiting at most `serve.batch_wait_timeout_s`); a batch may mix directions and runs one forward per
direction; each result is PNG-encoded on its own again.
Each image is resized to the model's training size, translated, and resized back to its own
size, so the PNG returned has the input's width and height. A request whose bytes fail to
decode gets its own 400 result; the rest of its batch is unaffected. The forward itself is the
backend's (serving/backends.py: eager torch, or ONNX Runtime on exported files; `serve.backend`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import torch
from ray import serve

from crossnet_dist.images import encode_png, to_rgb
from crossnet_dist.serving.loopback import bind_replica_grpc_to_loopback
from crossnet_dist.serving.requests import RequestRejected, decode_checked

log = logging.getLogger(__name__)


def replica_device(settings: dict[str, Any]) -> str:
    """serve.device; "auto" is a GPU only when the replica was given one (serve.gpus_per_replica)."""
    from crossnet_dist.devices import resolve_device

    if settings.get("backend") == "onnxruntime":
        return "cpu"
    name = "cpu" if settings["device"] == "auto" and not settings["gpus_per_replica"] else settings["device"]
    return str(resolve_device(name, "serve.device"))


class TranslatorModel:
    """Deployed by crossnet_dist.serving.deploy with the options of the `serve:` config section."""

    def __init__(self, checkpoint: str, settings: dict[str, Any]):
        bind_replica_grpc_to_loopback()
        start = time.perf_counter()
        from crossnet_dist.serving.backends import build_backend

        self.settings = settings
        torch.set_num_threads(max(1, int(settings["cpus_per_replica"])))  # no oversubscription beside other replicas
        self.device = replica_device(settings)
        self.backend = build_backend(checkpoint, settings, self.device)
        self.max_pixels = int(settings["max_pixels"])
        self.batching = settings["max_batch_size"] > 1
        self._forward_lock = threading.Lock()  # one forward at a time per replica (batching off runs in threads)
        self.translate_batch.set_max_batch_size(int(settings["max_batch_size"]))
        self.batch_wait_s = float(settings["batch_wait_timeout_s"])
        self._waiting = 0  # requests between decode and the end of their batch
        self.translate_batch.set_batch_wait_timeout_s(self.batch_wait_s)
        self.replica = _replica_id()
        self._examples: list[dict[str, Any]] | None = None
        self.load_s = time.perf_counter() - start
        log.info("replica %s loaded %s (%s, %s) on %s in %.2fs", self.replica, self.backend.url,
                 self.backend.method_name, self.backend.name, self.device, self.load_s)

    def info(self) -> dict[str, Any]:
        return {
            "method": self.backend.method_name,
            "checkpoint": self.backend.url,
            "backend": self.backend.name,
            "image_size": self.backend.image_size,
            "directions": list(self.backend.directions),
            "resolutions": list(self.backend.resolutions),
            "device": self.device,
            "best_pointer": self.backend.pointer,
            "model_revision": self.backend.revision,
            "step": self.backend.facts.get("step"),
            "ema": self.backend.facts.get("ema"),
            "replica": self.replica,
            "load_s": self.load_s,
        }

    async def examples(self) -> list[dict[str, Any]]:
        """The web page's example images (serving/examples.py), read on the first call."""
        if self._examples is None:
            from crossnet_dist.serving.examples import held_out_examples

            self._examples = await asyncio.to_thread(held_out_examples, self.backend.data_cfg)
        return self._examples

    async def translate(self, data: bytes, direction: str, resolution: str = "model") -> dict[str, Any]:
        """One request: {"png": bytes, "timing": {part: s}} or {"status": 4xx, "error", "detail"}, plus
        batch facts. Decoding and encoding run per request in threads, outside the batched forward, so
        they overlap with other requests' forwards."""
        from crossnet_dist.serving.backends import BackendRefusal

        facts = {"replica": self.replica, "load_s": self.load_s, "model_revision": self.backend.revision}
        start = time.perf_counter()
        try:  # this request's own 4xx; the batch it would have joined goes on without it
            image = await asyncio.to_thread(self._decode, data, direction, resolution)
        except RequestRejected as err:
            return {"status": err.status, **err.body(), "work_s": time.perf_counter() - start, **facts}
        except BackendRefusal as err:
            return {"status": 400, "error": err.error, "detail": str(err), "work_s": time.perf_counter() - start, **facts}
        decoded = time.perf_counter()
        if self.batching:
            # a lone request does not wait for company: batches wait serve.batch_wait_timeout_s only when
            # other requests are on their way through this replica
            self._waiting += 1
            self.translate_batch.set_batch_wait_timeout_s(self.batch_wait_s if self._waiting > 1 else 0.0)
            try:
                out = await self.translate_batch(image, direction, resolution)
            finally:
                self._waiting -= 1
        else:
            out = (await asyncio.to_thread(self._forward, [image], [direction], [resolution]))[0]
        encoding = time.perf_counter()
        png = await asyncio.to_thread(encode_png, out["image"])
        timing = {"decode": decoded - start, "queue": out["started"] - decoded, "forward": out["forward_s"],
                  "encode": time.perf_counter() - encoding}
        # this request's replica time: the batch's forward is shared by its requests
        work_s = timing["decode"] + out["forward_s"] / out["batch_size"] + timing["encode"]
        result = {"png": png, "timing": timing, "work_s": work_s, **facts}
        if out["reports_batch"]:  # each batch is reported once, with its first request
            result.update(batch_size=out["batch_size"], forward_s=out["forward_s"])
        return result

    # The decorator's limits are placeholders: __init__ sets them from the config.
    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def translate_batch(self, images: list[Any], directions: list[str], resolutions: list[str]) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._forward, images, directions, resolutions)

    def _decode(self, data: bytes, direction: str, resolution: str):
        image = to_rgb(decode_checked(data, self.max_pixels))
        self.backend.check(direction, resolution, image.size)
        return image

    def _forward(self, images: list[Any], directions: list[str], resolutions: list[str]) -> list[dict[str, Any]]:
        """Translated PIL images of one batch, one forward per (direction, resolution) present."""
        outputs: list[Any] = [None] * len(images)
        groups: dict[tuple[str, str], list[int]] = {}
        for i, key in enumerate(zip(directions, resolutions)):
            groups.setdefault(key, []).append(i)
        with self._forward_lock:
            start = time.perf_counter()
            for (direction, resolution), indices in groups.items():
                for i, out in zip(indices, self.backend.translate([images[i] for i in indices], direction, resolution)):
                    outputs[i] = out
            forward_s = time.perf_counter() - start
        return [{"image": out, "started": start, "forward_s": forward_s, "batch_size": len(images), "reports_batch": i == 0}
                for i, out in enumerate(outputs)]


class InProcessModel:
    """A TranslatorModel inside the ingress replica (topology single), called as the ingress calls a
    deployment handle, `await model.translate.remote(...)`, without the hop to another actor."""

    def __init__(self, checkpoint: str, settings: dict[str, Any]):
        self._model = TranslatorModel(checkpoint, settings)

    def __getattr__(self, name: str):
        method = getattr(self._model, name)

        class Call:
            @staticmethod
            async def remote(*args):
                result = method(*args)
                return await result if asyncio.iscoroutine(result) else result

        return Call


def _replica_id() -> str:
    try:
        return serve.get_replica_context().replica_id.unique_id
    except Exception:  # noqa: BLE001 - outside a replica (unit use)
        return "local"
