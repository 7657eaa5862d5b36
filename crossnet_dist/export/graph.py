"""One direction of a trained translator as a graph that runs without this package.

The exported graph takes what an image library gives, not what the networks train on:

    input  "image":       float32, N x 3 x H x W, RGB in [0, 1]
    output "translation": float32, N x 3 x H x W, RGB in [0, 1]

For the fully convolutional translators (CrossNet, CycleGAN) H and W are dynamic: any side of at least
`min_side` px translates at its own size (reflect-padded inside the graph up to a multiple of
2**model.n_downsampling and cropped back, as `crossnet translate --resolution full` does). The other
methods are exported at their training size (H = W = model.image_size): resize to it and back.
"""

from __future__ import annotations

import contextlib
import logging
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from crossnet_dist.methods import check_direction

FORMATS = ("onnx", "torchscript")
INPUT_NAME = "image"
OUTPUT_NAME = "translation"
MAX_SIDE = 16384  # the dynamic sides' upper bound the exporter is told


class ExportError(ValueError):
    """The checkpoint or the options cannot be exported; the message says why."""


class TranslatorCore(nn.Module):
    """method.translate for one direction, as a module of its own (what the exporters trace)."""

    def __init__(self, method, direction: str):
        super().__init__()
        check_direction(direction)
        self.method = method
        self.direction = direction

    def forward(self, x: Tensor) -> Tensor:
        return self.method.translate(x, self.direction)


class PortableTranslator(nn.Module):
    """[0, 1] RGB in and out around `core` (which works on [-1, 1]); with `multiple` > 1 the input is
    reflect-padded on the bottom and right to multiples of it and the output cropped back."""

    def __init__(self, core: nn.Module, multiple: int):
        super().__init__()
        self.core = core
        self.multiple = multiple

    def forward(self, image: Tensor) -> Tensor:
        height, width = image.shape[-2], image.shape[-1]
        pad_h = (self.multiple - height % self.multiple) % self.multiple
        pad_w = (self.multiple - width % self.multiple) % self.multiple
        x = F.pad(image * 2 - 1, [0, pad_w, 0, pad_h], mode="reflect")
        y = self.core(x)[:, :, :height, :width]
        return ((y + 1) / 2).clamp(0, 1)


def export_onnx(module: PortableTranslator, example: Tensor, dynamic_min_side: int | None, path: str,
                metadata: dict[str, str]) -> None:
    """Writes `module` as an ONNX file (torch.onnx's dynamo exporter) with `metadata` in its
    metadata_props; dynamic batch always, dynamic height/width of at least `dynamic_min_side` px
    unless it is None."""
    for name in ("onnx_ir", "onnxscript", "torch.onnx"):  # their INFO lines are about the exporter's passes
        logging.getLogger(name).setLevel(logging.WARNING)
    batch = torch.export.Dim("batch", min=1, max=1024)
    sizes = {0: batch}
    if dynamic_min_side is not None:
        sizes |= {2: torch.export.Dim("height", min=dynamic_min_side, max=MAX_SIDE),
                  3: torch.export.Dim("width", min=dynamic_min_side, max=MAX_SIDE)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's own notices about its internals, not about this model
        program = torch.onnx.export(module, (example,), dynamo=True, verbose=False, dynamic_shapes={"image": sizes},
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], optimize=True)
    program.model.metadata_props.update(metadata)
    program.save(path)


def export_torchscript(module: PortableTranslator, example: Tensor, path: str, extra_files: dict[str, str]) -> None:
    """Writes `module` with torch.jit: the networks traced at `example`'s size (convolutions, norms and
    upsampling hold no size of their own), the padding and cropping scripted so they follow each input."""
    multiple = module.multiple
    pad_h, pad_w = -example.shape[-2] % multiple, -example.shape[-1] % multiple
    with torch.no_grad(), jit_quietly():
        core = torch.jit.trace(module.core, (F.pad(example * 2 - 1, [0, pad_w, 0, pad_h], mode="reflect"),),
                               check_trace=False)
        # frozen: weights become constants without requires_grad, so callers need no torch.no_grad()
        scripted = torch.jit.freeze(torch.jit.script(PortableTranslator(core, multiple).eval()))
        torch.jit.save(scripted, path, _extra_files=extra_files)



@contextlib.contextmanager
def jit_quietly():
    """torch.jit warns on every call that it is deprecated in favour of torch.export; TorchScript is
    still the format `torch.jit.load` users ask for (the CLI's help says ONNX is the lasting one)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit.*deprecated")
        # the networks' size checks (networks/shapes.py) run once at trace time; the file's metadata
        # carries the minimum side they imply
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield
