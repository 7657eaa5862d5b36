"""Listing the images of one folder once, sorted (which folders a split reads: splits.py)."""

from __future__ import annotations

from fsspec import AbstractFileSystem

from crossnet_dist.data.errors import DatasetError
from crossnet_dist.images import IMAGE_SUFFIXES
from crossnet_dist.storage import RetryPolicy, call_with_retries, display_url

def list_image_keys(fs: AbstractFileSystem, folder: str, policy: RetryPolicy, max_images: int = 0) -> list[str]:
    """Sorted paths of the images (png, jpg, jpeg) under `folder`, recursively; the first
    `max_images` if > 0. Raises DatasetError naming the URL if there are none."""
    url = display_url(fs, folder)
    try:
        found = call_with_retries(lambda: fs.find(folder), policy, url)
    except FileNotFoundError:
        found = []
    except PermissionError as err:
        raise DatasetError(f"{url}: access denied while listing ({err})") from None
    keys = sorted(path for path in found if path.lower().endswith(IMAGE_SUFFIXES))
    if not found:
        _explain_missing_root(fs, folder, policy)
    if not keys:
        what = f"{len(found)} objects, none of them images" if found else "missing or empty"
        raise DatasetError(
            f"{url}: no images found ({what}); expected image files ({', '.join(IMAGE_SUFFIXES)}) in the "
            f"CycleGAN layout <root>/trainA, trainB, testA, testB"
        )
    return keys[:max_images] if max_images > 0 else keys


def _explain_missing_root(fs: AbstractFileSystem, folder: str, policy: RetryPolicy) -> None:
    """An empty listing whose cause is the root itself: say that rather than "no images in trainA"."""
    root = folder.rstrip("/").rsplit("/", 1)[0]
    if not root or "/" not in folder.rstrip("/"):
        return
    url = display_url(fs, root)
    if call_with_retries(lambda: fs.isfile(root), policy, url):
        raise DatasetError(f"data root {url} is a file, not a folder holding trainA/ trainB/ testA/ testB/")
    if not call_with_retries(lambda: fs.exists(root), policy, url):
        raise DatasetError(f"data root {url} does not exist (config key data.root)")
