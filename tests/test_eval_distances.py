"""Frechet and kernel distances: ~0 for identical sets, growing as one set is shifted."""

import pytest
import torch

from crossnet_dist.evaluation.distances import frechet_distance, kernel_distance
from tests.helpers import photo_crops


@pytest.mark.timeout(30)
def test_distances_are_zero_for_identical_sets_and_grow_with_a_shift():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 16, generator=g)
    same_distribution = torch.randn(200, 16, generator=g)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    fds = [frechet_distance(x, x + shift) for shift in (0.25, 0.5, 1.0)]
    kds = [kernel_distance(x, x + shift, subset_size=100, subsets=10)[0] for shift in (0.25, 0.5, 1.0)]
    assert fds == sorted(fds) and fds[0] > 0.5  # |shift|^2 * 16 = 1, 4, 16
    assert fds[-1] == pytest.approx(16.0, rel=0.05)
    assert kds == sorted(kds) and kds[0] > 0
    # Unbiased KID of two samples of one distribution is ~0 (either sign), far below any shift.
    kd_same, kd_std = kernel_distance(x, same_distribution, subset_size=100, subsets=10)
    assert abs(kd_same) < 0.2 * kds[0] and kd_std >= 0


@pytest.mark.timeout(60)
def test_efficientnet_distances_see_a_colour_shift_in_real_photos():
    from crossnet_dist.evaluation.features import EfficientNetLite0Features
    from crossnet_dist.evaluation.split_images import to_uint8
    from crossnet_dist.images import pil_to_tensor

    images = to_uint8(torch.stack([pil_to_tensor(im) for im in photo_crops("china.jpg", 4, 32, seed=3)]))
    tinted = images.clone()
    tinted[:, 0] = (tinted[:, 0].int() + 80).clamp(max=255).to(torch.uint8)  # redder
    features = EfficientNetLite0Features(batch_size=4)
    f_real, f_tinted = features(images), features(tinted)
    assert f_real.shape == (4, 1280)
    assert frechet_distance(f_real, f_real) == pytest.approx(0.0, abs=1e-3)
    assert frechet_distance(f_real, f_tinted) > 1.0
    assert kernel_distance(f_real, f_tinted)[0] > kernel_distance(f_real, f_real)[0]


def test_too_few_images_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 2 images"):
        frechet_distance(torch.zeros(1, 4), torch.zeros(5, 4))
