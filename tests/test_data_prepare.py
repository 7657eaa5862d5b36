"""`crossnet data prepare|upload|ls` against the session's SeaweedFS server and local folders."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from crossnet_dist.cli import main
from crossnet_dist.data.npm_packages import EMOJI_PACKAGES, tarball_path
from crossnet_dist.storage import opened

pytestmark = pytest.mark.timeout(60)
NPM_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "npm"


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """The CLI reaches the session server through the standard AWS_* variables."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server


def ls_json(url: str, capsys) -> dict:
    capsys.readouterr()
    assert main(["data", "ls", url, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def needs_emoji_tarballs():
    missing = [p.name for p in (tarball_path(n, v, NPM_CACHE) for n, v in EMOJI_PACKAGES.values()) if not p.is_file()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not in {NPM_CACHE}: `make setup` fetches them (tests never download)")


def test_prepare_emoji_limit_into_s3(s3_env, s3_prefix, capsys):
    needs_emoji_tarballs()
    assert main(["data", "prepare", "emoji", "--out", s3_prefix, "--limit", "20", "--cache", str(NPM_CACHE)]) == 0
    expected = {"images": 18, "other": 0}, {"images": 2, "other": 0}  # every 10th emoji held out
    assert ls_json(s3_prefix, capsys) == {
        ".": {"images": 0, "other": 1},  # splits.json: the validation split, every 10th training emoji
        "testA": expected[1],
        "testB": expected[1],
        "trainA": expected[0],
        "trainB": expected[0],
    }
    with opened(s3_prefix, s3_env.storage_options()) as (fs, root):
        names_a = sorted(p.rsplit("/", 1)[1] for p in fs.find(f"{root}/trainA"))
        names_b = sorted(p.rsplit("/", 1)[1] for p in fs.find(f"{root}/trainB"))
        image = Image.open(io.BytesIO(fs.cat_file(f"{root}/trainA/{names_a[0]}")))
        val = json.loads(fs.cat_file(f"{root}/splits.json"))["val"]
    assert names_a == names_b  # the same emoji, drawn by each vendor
    assert image.size == (64, 64) and image.mode == "RGBA"
    assert val == [names_a[0], names_a[10]]  # 2 val pairs, held out of training


def test_emoji_full_set_sizes():
    needs_emoji_tarballs()
    from crossnet_dist.data.emoji_set import emoji_items

    counts = Counter(key.split("/")[0] for key, _ in emoji_items(NPM_CACHE))
    assert counts == {"trainA": 3407, "trainB": 3407, "testA": 379, "testB": 379}


def test_prepare_digits_limit_to_a_local_folder(tmp_path, capsys):
    out = tmp_path / "digits"
    assert main(["data", "prepare", "digits", "--out", str(out), "--limit", "30"]) == 0
    counts = {folder: len(list((out / folder).iterdir())) for folder in ("trainA", "trainB", "testA", "testB")}
    assert counts == {"trainA": 27, "trainB": 27, "testA": 3, "testB": 3}
    for folder in ("trainA", "trainB"):
        image = Image.open(next((out / folder).iterdir()))
        assert image.size == (32, 32) and image.mode == "RGB"
    assert ls_json(f"file://{out}", capsys)["trainB"] == {"images": 27, "other": 0}


def test_upload_a_local_folder_and_list_it(s3_env, s3_prefix, tmp_path, capsys):
    from tests.helpers import write_tiny_dataset

    local = write_tiny_dataset(tmp_path / "tiny", n_train=5, n_test=2, size=16)
    (local / "trainA" / "notes.txt").write_text("not an image")
    assert main(["data", "upload", str(local), s3_prefix]) == 0
    assert "uploaded 14 images" in capsys.readouterr().out
    counts = ls_json(s3_prefix, capsys)
    assert counts == {"testA": {"images": 2, "other": 0}, "testB": {"images": 2, "other": 0},
                      "trainA": {"images": 5, "other": 0}, "trainB": {"images": 5, "other": 0}}


def test_listing_or_uploading_nothing_fails_naming_the_url(s3_env, s3_prefix, tmp_path, capsys):
    assert main(["data", "ls", f"{s3_prefix}/nothing"]) == 2
    assert f"{s3_prefix}/nothing: missing or empty" in capsys.readouterr().err
    (tmp_path / "flat").mkdir()
    assert main(["data", "upload", str(tmp_path / "flat"), s3_prefix]) == 2
    assert f"{tmp_path / 'flat'}: expected the CycleGAN layout" in capsys.readouterr().err
