"""Where runs live (Ray Train runs and Tune campaigns): a local folder or an S3 prefix, as a pyarrow filesystem.

Ray Train writes each run to `<storage_path>/<run_name>/` (its checkpoints `step_XXXXXXXX/`
and its own state files); we add `generator.pt` (the serving export) and `tb/` there.
For `s3://bucket/prefix` the endpoint and keys come from `storage.credentials.s3_settings`
(`data.storage`, then the AWS_* environment), so a local S3 server on 127.0.0.1 works the same as AWS.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs

from crossnet_dist.config_errors import ConfigError
from crossnet_dist.storage.credentials import s3_settings


@dataclass
class RunStorage:
    url: str  # what users see: /abs/path or s3://bucket/prefix
    fs_path: str  # the same place as a path inside `filesystem`
    filesystem: pafs.FileSystem

    @property
    def ray_storage_path(self) -> str:
        """For RunConfig(storage_path=..., storage_filesystem=self.filesystem)."""
        return self.fs_path

    def run_url(self, run_name: str, *parts: str) -> str:
        return "/".join([self.url.rstrip("/"), run_name, *parts])

    def url_of(self, fs_path: str) -> str:
        """A path inside `filesystem` as a URL (what dist.init_from and users take)."""
        return f"s3://{fs_path.lstrip('/')}" if self.url.startswith("s3://") else fs_path

    def run_names(self) -> list[str]:
        """Run folders under the storage path, oldest name first."""
        try:
            infos = self.filesystem.get_file_info(pafs.FileSelector(self.fs_path, allow_not_found=True))
        except FileNotFoundError:
            return []
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory and not i.base_name.startswith("."))

    def exists(self, run_name: str) -> bool:
        info = self.filesystem.get_file_info(f"{self.fs_path.rstrip('/')}/{run_name}")
        return info.type == pafs.FileType.Directory

    def pick_name(self, resume: str | None, new_name: str, key: str, kind: str = "run", marker: str = "") -> str:
        """The folder a run (or campaign) writes to. `resume` None: `new_name`, which must not exist yet
        (the error names config key `key`); "": the newest one; a name or its URL: that one, which must
        exist. With `marker`, only folders holding that file count (a campaign holds campaign.yaml)."""
        def counts(name: str) -> bool:
            return self.exists(name) and (not marker or path_exists(self.filesystem, join_path(self.fs_path, name, marker)))

        if resume is None:
            if self.exists(new_name):
                raise ConfigError(f"config key '{key}': {kind} {new_name!r} already exists under {self.url}; "
                                  f"continue it with --resume {new_name} or pick another name")
            return new_name
        known = [name for name in self.run_names() if counts(name)]
        if resume == "":
            if not known:
                raise ConfigError(f"--resume: no {kind}s to resume under {self.url}")
            return known[-1]
        name = Path(resume).name if resume.startswith(self.url) else resume
        if not counts(name):
            raise ConfigError(f"--resume: {kind} {name!r} not found under {self.url} ({kind}s: {known})")
        return name


def timestamped_name(out_dir: str, *parts: str) -> str:
    """<train.out_dir's name>[-<parts>]-<YYYYmmdd-HHMMSS>: the name of a run or campaign left unnamed."""
    return "-".join([Path(out_dir).name, *parts, time.strftime("%Y%m%d-%H%M%S")])


def s3_filesystem(storage_cfg=None) -> pafs.S3FileSystem:
    """The pyarrow S3 filesystem Ray Train writes through, from the same settings as the fsspec one."""
    settings = s3_settings(storage_cfg)
    kwargs = {"access_key": settings.key, "secret_key": settings.secret, "region": settings.region,
              "connect_timeout": settings.connect_timeout_s, "request_timeout": settings.read_timeout_s}
    kwargs = {k: v for k, v in kwargs.items() if v}
    if settings.endpoint_url:
        parsed = urlparse(settings.endpoint_url)
        kwargs["endpoint_override"] = parsed.netloc or parsed.path
        kwargs["scheme"] = parsed.scheme or "https"
    return pafs.S3FileSystem(**kwargs)


def resolve_storage(storage_path: str, storage_cfg=None) -> RunStorage:
    """A local path (made absolute: Ray needs that) or s3://bucket/prefix."""
    if storage_path.startswith("s3://"):
        fs_path = storage_path[len("s3://"):].strip("/")
        return RunStorage(url=f"s3://{fs_path}", fs_path=fs_path, filesystem=s3_filesystem(storage_cfg))
    if "://" in storage_path:
        raise ValueError(f"config key 'dist.storage_path': unsupported scheme in {storage_path!r} (use a path or s3://)")
    path = str(Path(storage_path).expanduser().resolve())
    return RunStorage(url=path, fs_path=path, filesystem=pafs.LocalFileSystem())


def upload_file(local: str | Path, filesystem: pafs.FileSystem, fs_path: str) -> None:
    """Copies one local file to `fs_path`; the temporary name is renamed over the final one on
    local disks, and S3 puts are atomic, so readers never see a partial file."""
    local = Path(local)
    parent = fs_path.rsplit("/", 1)[0]
    filesystem.create_dir(parent, recursive=True)
    if isinstance(filesystem, pafs.LocalFileSystem):
        tmp = f"{fs_path}.tmp-{os.getpid()}"
        pafs.copy_files(str(local), tmp, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=filesystem)
        filesystem.move(tmp, fs_path)
    else:
        pafs.copy_files(str(local), fs_path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=filesystem)


def upload_dir(local: str | Path, filesystem: pafs.FileSystem, fs_path: str) -> None:
    filesystem.create_dir(fs_path, recursive=True)
    pafs.copy_files(str(local), fs_path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=filesystem)


def join_path(*parts: str) -> str:
    """`parts` joined by "/" (a filesystem path or URL prefix and the names under it)."""
    return "/".join(p.strip("/") if i else p.rstrip("/") for i, p in enumerate(parts))


def read_text(filesystem: pafs.FileSystem, fs_path: str) -> str | None:
    """The file's text, or None when it is missing or unreadable."""
    try:
        with filesystem.open_input_stream(fs_path) as f:
            return f.read().decode()
    except (FileNotFoundError, OSError):
        return None


def write_bytes(filesystem: pafs.FileSystem, fs_path: str, data: bytes) -> None:
    """Writes `data` to `fs_path` through upload_file (never a partial file under the final name)."""
    with tempfile.TemporaryDirectory(prefix="crossnet-write-") as tmp:
        local = Path(tmp) / Path(fs_path).name
        local.write_bytes(data)
        upload_file(local, filesystem, fs_path)


def append_text(filesystem: pafs.FileSystem, fs_path: str, text: str) -> None:
    """Adds `text` at the end of the file (object stores cannot append: the file is rewritten)."""
    write_bytes(filesystem, fs_path, (read_text(filesystem, fs_path) or "").encode() + text.encode())


def path_exists(filesystem: pafs.FileSystem, fs_path: str) -> bool:
    return filesystem.get_file_info(fs_path).type != pafs.FileType.NotFound
