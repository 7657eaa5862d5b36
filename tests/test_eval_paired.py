"""Paired metrics: each translation against the true image of the same name, beside doing nothing."""

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from crossnet_dist.evaluation.paired import pair_indices, paired_metrics
from crossnet_dist.evaluation.scoring import DIRECTION_DOMAINS, Translations
from crossnet_dist.evaluation.split_images import DomainImages


def _images(seed: int, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 16, 16), generator=g, dtype=torch.uint8)


def _ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    return structural_similarity(a.permute(1, 2, 0).numpy(), b.permute(1, 2, 0).numpy(), channel_axis=-1, data_range=255,
                                 gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


@pytest.fixture
def paired_set():
    """testA has x.png, y.png, only_a.png; testB has y.png, x.png, only_b.png (another order)."""
    a, b = _images(0, 3), _images(1, 3)
    images = {"a": DomainImages(["x.png", "y.png", "only_a.png"], a), "b": DomainImages(["y.png", "x.png", "only_b.png"], b)}
    outputs = {"a2b": _images(2, 3), "b2a": _images(3, 3)}
    translations = {d: Translations(inputs=images[src].pixels, outputs=outputs[d], reconstructions=images[src].pixels)
                    for d, (src, _) in DIRECTION_DOMAINS.items()}
    return images, translations


def test_pairs_are_matched_by_file_name():
    assert pair_indices(["x.png", "y.png", "z.png"], ["y.png", "x.png"]) == {0: 1, 1: 0}


def test_paired_l1_and_its_baseline_match_a_hand_computation(paired_set):
    images, translations = paired_set
    m, counts = paired_metrics(translations, images, DIRECTION_DOMAINS)
    assert counts == {"a2b": 2, "b2a": 2}
    a, b = images["a"].pixels.double() / 127.5 - 1, images["b"].pixels.double() / 127.5 - 1
    fake_b = translations["a2b"].outputs.double() / 127.5 - 1
    # a2b: A's x (0) against B's x (1), A's y (1) against B's y (0)
    hand = ((fake_b[0] - b[1]).abs().mean() + (fake_b[1] - b[0]).abs().mean()) / 2
    nothing = ((a[0] - b[1]).abs().mean() + (a[1] - b[0]).abs().mean()) / 2
    assert m["paired_l1_a2b"] == pytest.approx(float(hand), rel=1e-6)
    assert m["paired_l1_a2b_identity_baseline"] == pytest.approx(float(nothing), rel=1e-6)
    assert m["paired_l1_a2b_ratio"] == pytest.approx(float(hand / nothing), rel=1e-6)
    assert m["paired_l1"] == pytest.approx((m["paired_l1_a2b"] + m["paired_l1_b2a"]) / 2)


def test_paired_ssim_averages_per_pair_ssim_of_the_right_images(paired_set):
    images, translations = paired_set
    m, _ = paired_metrics(translations, images, DIRECTION_DOMAINS)
    a, b, fake_a = images["a"].pixels, images["b"].pixels, translations["b2a"].outputs
    # b2a: B's y (0) against A's y (1), B's x (1) against A's x (0)
    hand = (_ssim(fake_a[0], a[1]) + _ssim(fake_a[1], a[0])) / 2
    nothing = (_ssim(b[0], a[1]) + _ssim(b[1], a[0])) / 2
    assert m["paired_ssim_b2a"] == pytest.approx(hand, rel=1e-6)
    assert m["paired_ssim_b2a_identity_baseline"] == pytest.approx(nothing, rel=1e-6)
    assert m["paired_ssim_b2a_ratio"] == pytest.approx(hand / nothing, rel=1e-6)


def test_a_perfect_translator_scores_l1_zero_and_ssim_one(paired_set):
    images, translations = paired_set
    translations["a2b"].outputs = images["b"].pixels[[1, 0, 2]]  # exactly the true counterparts
    m, _ = paired_metrics(translations, images, DIRECTION_DOMAINS)
    assert m["paired_l1_a2b"] == 0.0
    assert m["paired_ssim_a2b"] == pytest.approx(1.0)
    assert m["paired_l1_a2b_ratio"] == 0.0


def test_an_unpaired_set_has_no_paired_metrics(paired_set):
    images, translations = paired_set
    images["b"] = DomainImages(["p.png", "q.png", "r.png"], images["b"].pixels)
    m, counts = paired_metrics(translations, images, DIRECTION_DOMAINS)
    assert m == {} and counts == {}
    assert np.all([not t.truth_of for t in translations.values()])
