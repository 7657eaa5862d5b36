"""The feature cache: a set of images goes through the network once; any change is a miss."""

import pytest
import torch

from crossnet_dist.evaluation.cache import FeatureCache
from crossnet_dist.evaluation.features import FeatureExtractor


class CountingExtractor(FeatureExtractor):
    name = "counting"
    dim = 3

    def __init__(self):
        super().__init__("cpu", batch_size=2)
        self.images_seen = 0

    def fingerprint(self) -> str:
        return "counting-v1"

    def _batch(self, images):
        self.images_seen += len(images)
        return images.float().mean(dim=(2, 3))


def images(seed: int, n: int = 5) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 8, 8), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


@pytest.mark.timeout(30)
def test_second_request_for_the_same_images_is_a_hit(tmp_path):
    extractor, cache = CountingExtractor(), FeatureCache(tmp_path / "cache")
    first = cache(extractor, images(0))
    assert extractor.images_seen == 5 and cache.stats() == {"hits": 0, "misses": 1}
    again = FeatureCache(tmp_path / "cache")(extractor, images(0))  # a new process would see the same files
    assert extractor.images_seen == 5 and torch.equal(first, again)
    assert len(list((tmp_path / "cache" / "counting").glob("*.pt"))) == 1


@pytest.mark.timeout(30)
def test_changed_pixels_order_or_network_miss(tmp_path):
    extractor, cache = CountingExtractor(), FeatureCache(tmp_path)
    base = images(0)
    cache(extractor, base)
    changed = base.clone()
    changed[2, 1, 3, 3] ^= 1
    cache(extractor, changed)
    cache(extractor, base.flip(0))
    extractor.fingerprint = lambda: "counting-v2"
    cache(extractor, base)
    assert cache.stats() == {"hits": 0, "misses": 4}


@pytest.mark.timeout(30)
def test_a_damaged_entry_is_recomputed_and_no_folder_means_no_cache(tmp_path):
    extractor = CountingExtractor()
    FeatureCache(tmp_path)(extractor, images(1))
    (entry,) = (tmp_path / "counting").glob("*.pt")
    entry.write_bytes(b"garbage")
    cache = FeatureCache(tmp_path)
    cache(extractor, images(1))
    assert cache.stats() == {"hits": 0, "misses": 1} and extractor.images_seen == 10
    uncached = FeatureCache(None)
    uncached(extractor, images(1))
    uncached(extractor, images(1))
    assert uncached.stats() == {"hits": 0, "misses": 2}
