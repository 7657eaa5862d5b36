"""Translation at an image's own resolution (`crossnet translate --resolution full`), whole or in
overlapping blended tiles, with the real tiny CrossNet."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from crossnet_dist.checkpoints.files import atomic_save
from crossnet_dist.checkpoints.translator import serving_payload
from crossnet_dist.config import to_container
from crossnet_dist.full_resolution import (
    blend_weights,
    tile_starts,
    translate_tiled,
    translate_whole,
)
from crossnet_dist.methods import build_method
from tests.helpers import REPO, sample_photo, tiny_config


@pytest.fixture(scope="module")
def tiny_crossnet():
    torch.manual_seed(0)
    cfg = tiny_config(None)
    return build_method(cfg).eval(), cfg


def test_tiles_cover_the_image_and_neighbours_share_the_overlap():
    starts = tile_starts(100, 32, 8)
    assert starts[0] == 0 and starts[-1] + 32 == 100
    assert all(b - a <= 32 - 8 for a, b in zip(starts, starts[1:]))
    assert tile_starts(30, 32, 8) == [0]
    w = blend_weights(8, 3, "cpu")
    assert w.min() > 0 and w[4, 4] == 1 and w[0, 0] < w[1, 1] < w[3, 3]


def test_an_image_of_any_size_translates_at_its_own_size(tiny_crossnet):
    method, cfg = tiny_crossnet
    x = torch.rand(1, 3, 37, 50) * 2 - 1  # sides not multiples of 4 (2 downsamplings)
    y = translate_whole(method, x, "a2b", 4)
    assert y.shape == x.shape
    from crossnet_dist.networks.shapes import min_image_side

    for tiny in ((1, 1), (3, 2), (7, 5)):  # smaller than the networks take: padded up to what they need
        assert translate_whole(method, torch.zeros(1, 3, *tiny), "a2b", 4, min_image_side(cfg.model)).shape[-2:] == tiny
    z = torch.rand(1, 3, 40, 48) * 2 - 1  # a multiple already: exactly the translator's output
    assert torch.equal(translate_whole(method, z, "a2b", 4), method.translate(z, "a2b"))


@pytest.mark.parametrize("shape", [(1, 3000), (3000, 1), (2, 5000)])
def test_a_line_of_pixels_translates_in_tiles_at_its_own_size(tiny_crossnet, shape):
    """Its short side shrinks below a pixel at the statistics size: the statistics image keeps 1 px."""
    from crossnet_dist.networks.shapes import min_image_side

    method, cfg = tiny_crossnet
    x = torch.rand(1, 3, *shape) * 2 - 1
    y = translate_tiled(method, x, "a2b", 4, tile=512, overlap=32, stats_side=256, min_side=min_image_side(cfg.model))
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_tiled_blending_is_exact_for_a_pointwise_translation():
    class Pointwise(torch.nn.Module):  # the blending arithmetic alone: every tile agrees on every pixel
        def translate(self, x, direction):
            return torch.tanh(3 * x)

    x = torch.rand(1, 3, 70, 90) * 2 - 1
    tiled = translate_tiled(Pointwise(), x, "a2b", 4, tile=32, overlap=8)
    assert torch.allclose(tiled, torch.tanh(3 * x), atol=1e-6)


def photo_tensor(size=(160, 120)) -> torch.Tensor:
    photo = np.asarray(sample_photo("china.jpg").resize(size)).copy()
    return torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 127.5 - 1


def test_a_tiled_translation_stays_close_to_the_untiled_one_in_the_overlaps(tiny_crossnet):
    method, _ = tiny_crossnet
    x = photo_tensor()
    whole = translate_whole(method, x, "a2b", 4)
    diff = (translate_tiled(method, x, "a2b", 4, tile=64, overlap=32) - whole).abs()
    overlaps = torch.zeros(120, 160, dtype=torch.bool)
    for s in tile_starts(160, 64, 32)[1:]:
        overlaps[:, s : s + 32] = True
    for s in tile_starts(120, 64, 32)[1:]:
        overlaps[s : s + 32, :] = True
    # on [-1, 1]; measured: 0.029 in the overlaps, 0.003 elsewhere, 99th percentile 0.135
    assert diff[..., overlaps].mean() < 0.05 and diff[..., ~overlaps].mean() < 0.01
    assert diff.flatten().quantile(0.99) < 0.2


def test_tiles_normalise_with_the_whole_images_statistics(tiny_crossnet):
    method, _ = tiny_crossnet
    x = photo_tensor()
    whole = translate_whole(method, x, "a2b", 4)
    shared = (translate_tiled(method, x, "a2b", 4, tile=64, overlap=32) - whole).abs().mean()
    own = (translate_tiled(method, x, "a2b", 4, tile=64, overlap=32, stats_side=None) - whole).abs().mean()
    assert shared < 0.3 * own  # measured 0.023 against 0.140: a tile normalised alone is another image


@pytest.mark.timeout(120)
def test_the_cli_translates_at_full_resolution_in_tiles_and_refuses_a_bad_tile(tmp_path, tiny_crossnet):
    method, cfg = tiny_crossnet
    checkpoint = tmp_path / "generator.pt"
    atomic_save(serving_payload(method, to_container(cfg), 0), checkpoint)
    image = tmp_path / "big.png"
    sample_photo("flower.jpg").resize((150, 97)).save(image)
    run = lambda *extra: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "crossnet_dist", "translate", "--checkpoint", str(checkpoint), "--direction", "b2a",
         str(image), "--out", str(tmp_path / "out"), "--resolution", "full", *extra],
        cwd=REPO, capture_output=True, text=True, timeout=100)
    proc = run("--tile", "64", "--overlap", "16")
    assert proc.returncode == 0, proc.stderr
    assert Image.open(tmp_path / "out" / "big_b2a.png").size == (150, 97)
    bad = run("--tile", "30")
    assert bad.returncode == 2 and "tile must be a positive multiple of 4" in bad.stderr and "Traceback" not in bad.stderr
