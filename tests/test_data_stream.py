"""The streaming training/eval data sets against a real local S3 server (SeaweedFS on 127.0.0.1).

Each image is a solid colour whose red channel encodes its index, so every yielded sample
says which object it came from."""

from __future__ import annotations

import io
from collections import Counter

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from crossnet_dist.config import DataConfig
from crossnet_dist.data import DatasetError, DataStats, build_eval_loader, build_train_loader
from crossnet_dist.data.prepare import write_items
from crossnet_dist.data.streams import UnpairedImageStream

pytestmark = pytest.mark.timeout(60)

SIZE = 8


def solid_png(index: int, domain: str) -> bytes:
    colour = (8 * index + 4, 60 if domain == "A" else 200, 128)
    buffer = io.BytesIO()
    Image.new("RGB", (SIZE, SIZE), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def image_index(tensor: torch.Tensor) -> int:
    red = (float(tensor[0].mean()) + 1.0) * 127.5
    return round((red - 4) / 8)


def write_layout(url: str, storage: dict, counts: dict[str, int], extra: dict[str, bytes] | None = None) -> None:
    items = [(f"{folder}/{i:03d}.png", solid_png(i, folder[-1])) for folder, n in counts.items() for i in range(n)]
    write_items(items + list((extra or {}).items()), url, storage)


def data_cfg(url: str, storage: dict, **values):
    """A DataConfig (cfg.data) as the trainer passes it."""
    return OmegaConf.merge(
        OmegaConf.structured(DataConfig), {"root": url, "load_size": SIZE, "flip": False, "storage": storage, **values}
    )


def epoch_pairs(loader, epoch: int, start_index: int = 0) -> list[tuple[int, int]]:
    loader.dataset.set_epoch(epoch, start_index=start_index)
    pairs = []
    for batch in loader:
        assert batch["a"].shape[1:] == (3, SIZE, SIZE) and batch["a"].shape == batch["b"].shape
        assert isinstance(batch["stats"], DataStats)
        pairs += [(image_index(a), image_index(b)) for a, b in zip(batch["a"], batch["b"])]
    return pairs


@pytest.fixture(scope="module")
def equal_set(s3_server):
    url, storage = "s3://crossnet-test/stream-equal", s3_server.storage_options()
    write_layout(url, storage, {"trainA": 24, "trainB": 24, "testA": 3, "testB": 2})
    return url


@pytest.fixture(scope="module")
def unequal_set(s3_server):
    url, storage = "s3://crossnet-test/stream-unequal", s3_server.storage_options()
    write_layout(url, storage, {"trainA": 12, "trainB": 5})
    return url


def test_two_ranks_of_two_workers_read_every_image_exactly_once(equal_set, s3_storage):
    cfg = data_cfg(equal_set, s3_storage, batch_size=3, num_workers=2)
    seen_a, seen_b, total_read = Counter(), Counter(), 0
    for rank in range(2):
        loader = build_train_loader(cfg, image_size=SIZE, seed=7, rank=rank, world_size=2)
        assert loader.dataset.samples_per_epoch() == 12
        pairs = epoch_pairs(loader, epoch=0)
        assert len(pairs) == 12
        seen_a.update(a for a, _ in pairs)
        seen_b.update(b for _, b in pairs)
        total_read += loader.stats.images_read
        assert loader.dataset.reader._fs is None, "the parent must not open the S3 client (workers do)"
    assert seen_a == Counter(range(24))
    assert seen_b == Counter(range(24))  # equal sizes: the other domain is a permutation too
    assert total_read == 48  # each object fetched once in the whole job


def test_epoch_shuffle_repeats_with_the_seed_and_differs_across_epochs(equal_set, s3_storage):
    cfg = data_cfg(equal_set, s3_storage, batch_size=4, num_workers=2)
    loader = build_train_loader(cfg, image_size=SIZE, seed=3)
    first, second, first_again = (epoch_pairs(loader, e) for e in (0, 1, 0))  # persistent workers
    assert first == first_again
    assert first != second
    assert sorted(a for a, _ in first) == sorted(a for a, _ in second) == list(range(24))
    same_seed = build_train_loader(data_cfg(equal_set, s3_storage, batch_size=2), image_size=SIZE, seed=3)
    assert epoch_pairs(same_seed, 0) == first  # independent of batch size and worker count
    other_seed = build_train_loader(data_cfg(equal_set, s3_storage, batch_size=4), image_size=SIZE, seed=4)
    assert epoch_pairs(other_seed, 0) != first


def test_unequal_domains_iterate_the_larger_and_sample_the_smaller(unequal_set, s3_storage):
    cfg = data_cfg(unequal_set, s3_storage, batch_size=5)
    loader = build_train_loader(cfg, image_size=SIZE, seed=0)
    pairs = epoch_pairs(loader, 0)
    assert sorted(a for a, _ in pairs) == list(range(12))
    assert {b for _, b in pairs} <= set(range(5)) and len({b for _, b in pairs}) > 1
    assert pairs == epoch_pairs(build_train_loader(cfg, image_size=SIZE, seed=0), 0)


@pytest.mark.parametrize("start_index", [4, 3])  # batch-aligned and not
def test_start_index_resumes_with_exactly_the_remainder(equal_set, s3_storage, start_index):
    cfg = data_cfg(equal_set, s3_storage, batch_size=2, num_workers=2)
    single = data_cfg(equal_set, s3_storage, batch_size=2, num_workers=0)
    full = epoch_pairs(build_train_loader(single, image_size=SIZE, seed=5, rank=1, world_size=2), 2)
    loader = build_train_loader(cfg, image_size=SIZE, seed=5, rank=1, world_size=2)
    rest = epoch_pairs(loader, 2, start_index=start_index)
    assert rest == full[start_index:]
    assert loader.stats.images_read == 2 * len(rest)  # the skipped samples were never read
    assert len(epoch_pairs(loader, 3)) == len(full)  # the next epoch starts from its beginning again


def test_training_crops_flips_and_range(equal_set, s3_storage):
    cfg = data_cfg(equal_set, s3_storage, batch_size=4, load_size=12, flip=True)
    batch = next(iter(build_train_loader(cfg, image_size=SIZE, seed=0)))
    assert batch["a"].shape == (4, 3, SIZE, SIZE)
    assert batch["a"].min() >= -1 and batch["a"].max() <= 1 and batch["a"].dtype == torch.float32


def test_corrupt_objects_are_skipped_counted_and_named(s3_prefix, s3_storage):
    truncated = solid_png(30, "A")[:40]
    extra = {"trainA/bad_truncated.png": truncated, "trainA/bad_text.png": b"this is not an image\n"}
    write_layout(s3_prefix, s3_storage, {"trainA": 6, "trainB": 6}, extra)
    loader = build_train_loader(data_cfg(s3_prefix, s3_storage, batch_size=2, num_workers=2), image_size=SIZE, seed=1)
    for epoch in range(2):
        pairs = epoch_pairs(loader, epoch)
        assert sorted(a for a, _ in pairs) == list(range(6))  # every good image, nothing stopped
    assert loader.stats.images_skipped == 4  # two corrupt objects, two epochs
    named = "\n".join(loader.stats.skipped)
    assert f"{s3_prefix}/trainA/bad_truncated.png" in named and f"{s3_prefix}/trainA/bad_text.png" in named


def test_missing_or_empty_prefix_fails_at_construction_naming_the_url(s3_prefix, s3_storage, tmp_path):
    with pytest.raises(DatasetError, match=f"data root {s3_prefix}/nothing-here does not exist"):
        UnpairedImageStream(f"{s3_prefix}/nothing-here", s3_storage, image_size=SIZE, load_size=SIZE)
    write_items([("trainA/notes.txt", b"hello"), ("trainB/000.png", solid_png(0, "B"))], s3_prefix, s3_storage)
    with pytest.raises(DatasetError, match=f"{s3_prefix}/trainA: no images found \\(1 objects, none of them images\\)"):
        UnpairedImageStream(s3_prefix, s3_storage, image_size=SIZE, load_size=SIZE)
    with pytest.raises(DatasetError, match="data root s3://no-such-bucket-for-crossnet/x does not exist"):
        UnpairedImageStream("s3://no-such-bucket-for-crossnet/x", s3_storage, image_size=SIZE, load_size=SIZE)
    with pytest.raises(DatasetError, match=f"data root {tmp_path / 'absent'} does not exist"):
        UnpairedImageStream(str(tmp_path / "absent"), image_size=SIZE, load_size=SIZE)
    (tmp_path / "only_a" / "trainA").mkdir(parents=True)  # the root exists: the empty folder is named
    with pytest.raises(DatasetError, match=f"{tmp_path / 'only_a' / 'trainA'}: no images found \\(missing or empty\\)"):
        UnpairedImageStream(str(tmp_path / "only_a"), image_size=SIZE, load_size=SIZE)


def test_eval_loader_reads_each_test_image_once_in_sorted_order(equal_set, s3_storage):
    cfg = data_cfg(equal_set, s3_storage, batch_size=2, num_workers=2)
    loader = build_eval_loader(cfg, image_size=SIZE)
    batches = list(loader)
    assert [(b["domain"], b["keys"]) for b in batches] == [
        ("a", ["000.png", "001.png"]), ("a", ["002.png"]), ("b", ["000.png", "001.png"]),
    ]
    assert [image_index(x) for b in batches for x in b[b["domain"]]] == [0, 1, 2, 0, 1]
    assert len(loader) == 3
    only_b = build_eval_loader(cfg, image_size=SIZE, domain="b", batch_size=5, num_workers=0)
    assert [b["keys"] for b in only_b] == [["000.png", "001.png"]]
    assert torch.equal(torch.cat([b[b["domain"]] for b in loader]), torch.cat([b[b["domain"]] for b in batches]))


def test_a_local_folder_streams_exactly_like_the_bucket(equal_set, s3_storage, tmp_path):
    write_layout(str(tmp_path), {}, {"trainA": 24, "trainB": 24})
    from_s3 = epoch_pairs(build_train_loader(data_cfg(equal_set, s3_storage, batch_size=5), image_size=SIZE, seed=9), 1)
    from_disk = epoch_pairs(build_train_loader(data_cfg(f"file://{tmp_path}", {}, batch_size=5), image_size=SIZE, seed=9), 1)
    assert from_disk == from_s3
