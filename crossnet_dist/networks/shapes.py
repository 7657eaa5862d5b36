"""Which image sizes the networks can take, checked up front with a readable error."""

from __future__ import annotations

from typing import Any


class ImageSizeError(ValueError):
    """An image's height or width cannot pass through the networks."""


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def patchgan_output_size(size: int, n_layers: int) -> int:
    """Side of the PatchGAN's score map for an input side `size`."""
    for _ in range(n_layers):
        size = _conv_out(size, 4, 2, 1)
    for _ in range(2):  # the stride-1 conv and the 1-channel output conv
        size = _conv_out(size, 4, 1, 1)
    return size


def check_image_size(height: int, width: int, model: Any) -> None:
    """Raises ImageSizeError unless an HxW image fits the generator and the discriminator.

    The encoder halves the size `n_downsampling` times and the decoder doubles it back,
    so both sides must be multiples of 2**n_downsampling; the 7x7 reflection padding
    needs sides > 3; the PatchGAN needs at least one output patch.
    """
    factor = 2 ** model.n_downsampling
    for name, side in (("height", height), ("width", width)):
        if side % factor:
            raise ImageSizeError(
                f"image {name} {side} is not a multiple of {factor}: the encoder downsamples "
                f"{model.n_downsampling} times by 2 and the decoder must restore the exact size"
            )
        if side < max(4, 2 * factor):
            raise ImageSizeError(f"image {name} {side} is too small for the generator (min {max(4, 2 * factor)})")
        if patchgan_output_size(side, model.disc_layers) < 1:
            raise ImageSizeError(
                f"image {name} {side} is too small for a {model.disc_layers}-layer PatchGAN "
                f"(no output patch left)"
            )


def min_image_side(model: Any) -> int:
    """The smallest side (a multiple of 2**n_downsampling) that check_image_size accepts."""
    side = 2 ** model.n_downsampling
    while True:
        try:
            check_image_size(side, side, model)
            return side
        except ImageSizeError:
            side += 2 ** model.n_downsampling
