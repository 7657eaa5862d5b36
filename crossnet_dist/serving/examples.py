"""Example images for the web page: the first few of each domain of the checkpoint's held-out split.

The served checkpoint's config names its data (`data.root`, local or s3://, with data.storage); the
test split (testA/, testB/) is what it never trained on. A model replica reads PER_DOMAIN images of
each domain once, when the page first asks, and keeps them as PNG thumbnails of at most THUMB_SIDE px.
No data root reachable from the replica (an exported ONNX model carries none) means no examples: the
page then offers upload only. Images that fail to decode are skipped.
"""

from __future__ import annotations

import io
import logging
from typing import Any

log = logging.getLogger(__name__)
PER_DOMAIN = 3
THUMB_SIDE = 256
MAX_EXAMPLE_BYTES = 4 * 1024 * 1024


def held_out_examples(data_cfg: Any) -> list[dict[str, Any]]:
    """[{"domain": "A", "direction": "a2b", "name", "png", "width", "height"}] (A's images translate
    a2b, B's b2a); [] when the split cannot be read."""
    from PIL import Image

    from crossnet_dist.data.errors import DatasetError
    from crossnet_dist.data.splits import split_image_keys
    from crossnet_dist.images import encode_png, to_rgb
    from crossnet_dist.storage import RetryPolicy, StorageError, opened

    if data_cfg is None or not data_cfg.root:
        return []
    examples: list[dict[str, Any]] = []
    policy = RetryPolicy.from_config(data_cfg.storage)
    try:
        with opened(data_cfg.root, data_cfg.storage) as (fs, root):
            for domain, direction in (("A", "a2b"), ("B", "b2a")):
                for key in split_image_keys(fs, root, "test", (domain.lower(),), policy, PER_DOMAIN)[domain.lower()]:
                    if fs.size(key) > MAX_EXAMPLE_BYTES:
                        continue
                    try:
                        image = to_rgb(Image.open(io.BytesIO(fs.cat_file(key))))
                    except (OSError, ValueError):
                        continue
                    image.thumbnail((THUMB_SIDE, THUMB_SIDE))
                    examples.append({"domain": domain, "direction": direction, "name": key.rsplit("/", 1)[-1],
                                     "png": encode_png(image), "width": image.width, "height": image.height})
    except (DatasetError, StorageError, OSError) as err:
        log.info("no example images for the web page: %s", err)
        return []
    return examples
