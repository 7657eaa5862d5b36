"""The held-out split is read from a path or an s3:// URL; unreadable images are skipped and counted."""

import pytest

from crossnet_dist.evaluation.split_images import read_domain
from crossnet_dist.storage import StorageError, open_url
from tests.helpers import write_tiny_dataset


@pytest.mark.timeout(60)
def test_reads_a_split_from_s3_skipping_a_corrupt_image(tmp_path, s3_prefix, s3_storage):
    local = write_tiny_dataset(tmp_path / "data", n_train=1, n_test=3, size=36)
    (local / "testA" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    fs, root = open_url(s3_prefix, s3_storage)
    fs.put(str(local / "testA"), f"{root}/testA", recursive=True)

    images = read_domain(s3_prefix, "test", "a", 32, s3_storage)
    assert images.names == ["a_000.png", "a_001.png", "a_002.png"]
    assert images.pixels.shape == (3, 3, 32, 32) and str(images.pixels.dtype) == "torch.uint8"
    assert list(images.skipped) == ["broken.png"] and "not a readable image" in images.skipped["broken.png"]

    local_images = read_domain(str(local), "test", "a", 32, max_images=2)
    assert local_images.names == ["a_000.png", "a_001.png"]
    assert (local_images.pixels == images.pixels[:2]).all()  # same bytes, same tensors
    with pytest.raises(StorageError, match="testB: no images"):
        read_domain(s3_prefix, "test", "b", 32, s3_storage)
