"""UNIT, XGAN and the cascaded method (its deepest level: WGAN-GP with 4 critic steps, feature statistics
all-reduced over the workers) each trained for 3 steps by the distributed trainer: 2 Ray Train
workers, DeepSpeed ZeRO-2, one local Ray session for the module; the exported serving checkpoint
translates both directions."""

import pytest
import torch

from tests.dist_fixtures import dist_overrides, use_local_env

use_local_env()

from crossnet_dist.checkpoints.translator import load_translator  # noqa: E402
from crossnet_dist.config import load_config  # noqa: E402
from tests.helpers import REPO, cascaded_test_overrides, tiny_batches  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_session():
    import ray

    from crossnet_dist.distributed.driver import connect_ray

    ray.shutdown()
    connect_ray(None, num_cpus=2)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("method", ["unit", "xgan", "cascaded"])
def test_method_trains_with_two_workers_zero2(ray_session, tmp_path_factory, method):
    from crossnet_dist.distributed.driver import train_distributed

    storage = tmp_path_factory.mktemp(f"storage-{method}")
    vgg = cascaded_test_overrides() if method == "cascaded" else []
    cfg = load_config(REPO / f"jobs/configs/tiny_{method}.yaml", [
        "train.max_steps=3", *vgg, *dist_overrides(storage, f"dist.run_name={method}", "dist.zero_stage=2"),
    ])
    result = train_distributed(cfg)
    s = result.summary
    assert (result.step, s["world_size"], s["zero_stage"]) == (3, 2, 2)
    losses = [h["loss/G_total"] for h in result.history]
    assert len(losses) == 3 and torch.isfinite(torch.tensor(losses)).all()
    served, served_cfg = load_translator(result.generator_url)
    assert served_cfg.method == method
    x = tiny_batches(1, batch_size=2)[0]
    with torch.no_grad():
        for direction, key in (("a2b", "a"), ("b2a", "b")):
            out = served.translate(x[key], direction)
            assert out.shape == x[key].shape and torch.isfinite(out).all()
