"""Where the served model comes from: a serving checkpoint file, or a "best pointer" folder.

`--checkpoint` accepts
- a file: `runs/x/generator.pt`, `s3://bucket/campaign/best/generator.pt`;
- a folder holding `generator.pt` (a campaign's `<storage>/<campaign>/best/`, with the
  winner's config/metric JSON files beside it): `s3://bucket/campaign/best/`.
s3:// checkpoints are copied to a local temporary file, loaded, and the copy deleted (serving,
offline `crossnet translate` and `crossnet eval` all resolve checkpoints here).
The JSON files of a pointer folder (each at most 64 KiB) are shown by `GET /info`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossnet_dist.checkpoints.files import CheckpointError
from crossnet_dist.storage import is_s3_url, join, opened

log = logging.getLogger(__name__)

GENERATOR_FILE = "generator.pt"
_MAX_POINTER_JSON = 64 * 1024


@dataclass
class ResolvedCheckpoint:
    source: str  # what the user gave
    url: str  # the generator.pt it points to
    local_path: Path  # where it can be loaded from
    pointer: dict[str, Any] = field(default_factory=dict)  # JSON files of a best-pointer folder, by stem
    copied: bool = False  # local_path is a temporary copy of a remote file

    def discard_copy(self) -> None:
        """Deletes the temporary local copy of a remote checkpoint (once it is loaded)."""
        if self.copied:
            self.local_path.unlink(missing_ok=True)


def resolve_checkpoint(source: str, storage_cfg: Any = None, cache_dir: str | Path | None = None,
                       file_name: str = GENERATOR_FILE) -> ResolvedCheckpoint:
    """Finds `file_name` (generator.pt; an exported a2b.onnx) for `source` (the file or a folder
    holding it, local or s3://) and makes it a local file."""
    source = str(source)
    if is_s3_url(source):
        return _resolve_s3(source, storage_cfg, cache_dir, file_name)
    path = Path(source).expanduser()
    if path.is_dir():
        target = path / file_name
        if not target.is_file():
            raise CheckpointError(f"checkpoint folder {path} has no {file_name}")
        pointer = {p.stem: _read_json(p.read_bytes(), str(p)) for p in sorted(path.glob("*.json"))
                   if p.stat().st_size <= _MAX_POINTER_JSON}
        return ResolvedCheckpoint(source, str(target), target, _drop_none(pointer))
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    return ResolvedCheckpoint(source, str(path), path)


def _resolve_s3(source: str, storage_cfg: Any, cache_dir: str | Path | None, file_name: str) -> ResolvedCheckpoint:
    with opened(source, storage_cfg) as (fs, root):
        try:
            is_dir = fs.isdir(root)
            target = join(root, file_name) if is_dir else root
            if not fs.isfile(target):
                what = f"checkpoint folder {source} has no {file_name}" if is_dir else f"checkpoint not found: {source}"
                raise CheckpointError(what)
            pointer: dict[str, Any] = {}
            if is_dir:
                for info in fs.ls(root, detail=True):
                    name = info["name"]
                    if name.endswith(".json") and info.get("size", 0) <= _MAX_POINTER_JSON:
                        pointer[Path(name).stem] = _read_json(fs.cat_file(name), name)
            folder = Path(cache_dir or tempfile.gettempdir())
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix="crossnet-serve-", suffix=".part")
            os.close(fd)
            local = Path(tmp[: -len(".part")] + "-" + file_name)
            try:
                fs.get_file(target, tmp)
                os.replace(tmp, local)
            finally:
                Path(tmp).unlink(missing_ok=True)
        except CheckpointError:
            raise
        except (OSError, ValueError) as err:
            raise CheckpointError(f"checkpoint {source} could not be read: {type(err).__name__}: {err}") from None
    log.info("copied %s to %s", source, local)
    return ResolvedCheckpoint(source, f"s3://{target}", local, _drop_none(pointer), copied=True)


def _read_json(data: bytes, name: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        log.warning("ignoring %s: not JSON", name)
        return None


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
