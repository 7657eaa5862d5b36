"""The packaged YAML configs: `crossnet train NAME` (or load_config("NAME")) finds NAME.yaml here
when no file of that name exists. jobs/configs/ is a link to this folder."""

from __future__ import annotations

from pathlib import Path

from crossnet_dist.config_errors import ConfigError


def packaged_configs() -> dict[str, Path]:
    """name -> path of the YAML configs shipped in crossnet_dist/configs/."""
    folder = Path(__file__).resolve().parent
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def resolve_config_path(path: str | Path) -> Path:
    """A YAML file path, or the name of a packaged config (`crossnet`, `emoji.yaml`)."""
    path = Path(path)
    if path.is_file():
        return path
    packaged = packaged_configs()
    if path.parent == Path(".") and path.name.removesuffix(".yaml") in packaged:
        return packaged[path.name.removesuffix(".yaml")]
    raise ConfigError(f"config file not found: {path} (packaged configs: {', '.join(packaged)})")
