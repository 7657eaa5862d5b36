"""`crossnet export`: the tiny CrossNet's translator as ONNX and TorchScript files, run without this
package and compared with the eager model at two sizes that are not multiples of its stride."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from crossnet_dist.checkpoints.files import atomic_save
from crossnet_dist.checkpoints.translator import serving_payload
from crossnet_dist.config import to_container
from crossnet_dist.methods import build_method
from tests.helpers import REPO, config_from, tiny_config

# on the [0, 1] scale; measured 1.5e-06 (ONNX Runtime) and 0 (TorchScript) at these sizes
PARITY_BOUND = 1e-4
SIZES = [(1, 3, 37, 50), (2, 3, 72, 101)]


def eager(checkpoint, direction, image: np.ndarray) -> np.ndarray:
    """What `crossnet translate --resolution full` computes, on the exported files' [0, 1] scale."""
    from crossnet_dist.checkpoints.translator import load_translator
    from crossnet_dist.full_resolution import translate_whole
    from crossnet_dist.networks.shapes import min_image_side

    method, cfg = load_translator(checkpoint)
    x = torch.from_numpy(image) * 2 - 1
    y = translate_whole(method, x, direction, 2 ** cfg.model.n_downsampling, min_image_side(cfg.model))
    return ((y + 1) / 2).clamp(0, 1).numpy()


def write_checkpoint(path, cfg, seed=0):
    torch.manual_seed(seed)
    atomic_save(serving_payload(build_method(cfg), to_container(cfg), step=7), path)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("export") / "generator.pt", tiny_config(None))


def export(checkpoint, out, fmt, direction="a2b"):
    return subprocess.run([sys.executable, "-m", "crossnet_dist", "export", "--checkpoint", str(checkpoint),
                           "--format", fmt, "--direction", direction, "--out", str(out)],
                          capture_output=True, text=True, timeout=240)


# Runs an exported file in a fresh interpreter in which importing crossnet_dist fails.
RUNNER = """
import sys, json
sys.modules["crossnet_dist"] = None
import numpy as np
fmt, path, inputs, outputs = sys.argv[1:]
x = np.load(inputs)
if fmt == "onnx":
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    y = session.run(["translation"], {"image": x})[0]
    print(session.get_modelmeta().custom_metadata_map["crossnet"])
else:
    import torch
    y = torch.jit.load(path)(torch.from_numpy(x)).numpy()
np.save(outputs, y)
"""


def run_standalone(fmt, path, image, tmp_path):
    np.save(tmp_path / "in.npy", image)
    done = subprocess.run([sys.executable, "-I", "-W", "ignore", "-c", RUNNER, fmt, str(path), str(tmp_path / "in.npy"),
                           str(tmp_path / "out.npy")], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    return np.load(tmp_path / "out.npy"), done.stdout


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_an_exported_translator_matches_the_eager_model_at_two_sizes_without_the_package(checkpoint, tmp_path, fmt):
    out = tmp_path / f"a2b.{fmt}"
    done = export(checkpoint, out, fmt)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "max |exported - eager|" in done.stdout
    rng = np.random.default_rng(0)
    for shape in SIZES:
        image = rng.random(shape, dtype=np.float32)
        got, _ = run_standalone(fmt, out, image, tmp_path)
        assert got.shape == shape
        assert np.abs(got - eager(checkpoint, "a2b", image)).max() < PARITY_BOUND


def test_the_onnx_file_says_what_it_translates(checkpoint, tmp_path):
    out = tmp_path / "b2a.onnx"
    assert export(checkpoint, out, "onnx", "b2a").returncode == 0
    _, printed = run_standalone("onnx", out, np.zeros((1, 3, 24, 24), np.float32), tmp_path)
    meta = json.loads(printed)
    assert (meta["method"], meta["direction"], meta["dynamic_size"], meta["min_side"]) == ("crossnet", "b2a", True, 24)
    assert meta["input"]["range"] == [0, 1] and meta["step"] == 7 and meta["checkpoint"] == str(checkpoint)


def test_a_fixed_size_method_is_exported_at_its_training_size(tmp_path):
    ckpt = write_checkpoint(tmp_path / "unit.pt", config_from(REPO / "crossnet_dist/configs/tiny_unit.yaml"))
    done = export(ckpt, tmp_path / "unit.onnx", "onnx")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(onnx, 32x32)" in done.stdout


def test_a_broken_checkpoint_fails_in_one_line_and_leaves_no_file(tmp_path):
    bad = tmp_path / "generator.pt"
    bad.write_bytes(b"not a checkpoint")
    done = export(bad, tmp_path / "a2b.onnx", "onnx")
    assert done.returncode == 2
    assert done.stderr.startswith("crossnet export: error:") and "Traceback" not in done.stderr
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".crossnet-export-*"))


@pytest.mark.parametrize("case, says", [
    ("empty", "--out is empty"),
    ("folder", "is a folder: name a file in it"),
    ("under_a_file", "is a file, not a folder"),
    ("the_checkpoint", "is the checkpoint being exported"),
    ("unwritable", "cannot write /proc/x.onnx"),
])
def test_a_bad_out_path_fails_in_one_line_naming_it_and_writes_nothing(checkpoint, tmp_path, case, says):
    from crossnet_dist.export.files import export_checkpoint
    from crossnet_dist.export.graph import ExportError

    out = {"empty": "", "folder": str(tmp_path), "under_a_file": f"{checkpoint}/x.onnx",
           "the_checkpoint": str(checkpoint), "unwritable": "/proc/x.onnx"}[case]
    before = checkpoint.read_bytes()
    with pytest.raises(ExportError, match=says):
        export_checkpoint(str(checkpoint), "onnx", "a2b", out)
    assert checkpoint.read_bytes() == before and not list(tmp_path.iterdir())
    assert not list(checkpoint.parent.glob(".crossnet-export-*"))


def test_the_cli_names_a_bad_out_path_without_a_traceback(checkpoint, tmp_path):
    done = export(checkpoint, tmp_path, "onnx")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"crossnet export: error: --out {tmp_path} is a folder: name a file in it, " \
        f"e.g. {tmp_path / 'translator.onnx'}"
