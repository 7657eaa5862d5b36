"""The DeepSpeed engines of one data-parallel rank, in this process (a 1-rank gloo group on
127.0.0.1): ZeRO-0 skips the gradient all-reduce there is nothing to reduce with, and its steps
equal the single-process trainer's plain torch Adam steps bit for bit.

Two ranks still all-reduce: tests/test_dist_training.py's 2-worker ZeRO-0 run ends equal to its
ZeRO-2 run, which would fail if either rank trained on its own gradients.
"""

import pytest
import torch

from tests.dist_fixtures import off_loopback_sockets, use_local_env

use_local_env()

from tests.helpers import tiny_batches, tiny_config  # noqa: E402


@pytest.fixture(scope="module")
def one_rank_group():
    """A 1-rank gloo group on an in-memory store (a TCPStore would listen on every interface), one for
    the module: DeepSpeed keeps the first group's data-parallel group, so a second group would not match it."""
    import torch.distributed as tdist

    with pytest.MonkeyPatch.context() as monkeypatch:
        for key, value in {"MASTER_ADDR": "127.0.0.1", "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}.items():
            monkeypatch.setenv(key, value)  # DeepSpeed reads them; nothing connects to MASTER_ADDR
        tdist.init_process_group("gloo", store=tdist.HashStore(), rank=0, world_size=1)
        try:
            yield
            assert not off_loopback_sockets(), off_loopback_sockets()
        finally:
            tdist.destroy_process_group()


def trained(groups: str, steps: int = 3):
    from crossnet_dist.distributed.engines import build_engine
    from crossnet_dist.image_pool import ImagePool
    from crossnet_dist.methods import build_method
    from crossnet_dist.training.optimizers import TorchOptimizerGroup
    from crossnet_dist.training.seed import seed_everything
    from crossnet_dist.training.step import train_step

    cfg = tiny_config(None, "dist.zero_stage=0")
    seed_everything(0)
    method = build_method(cfg)
    if groups == "deepspeed":
        g = build_engine(method.generators, "generators", cfg.optim, cfg.dist, cfg.data.batch_size)
        d = build_engine(method.discriminators, "discriminators", cfg.optim, cfg.dist, cfg.data.batch_size)
        assert not g.engine.enable_backward_allreduce and not d.engine.enable_backward_allreduce
    else:
        g, d = TorchOptimizerGroup(method.generators.parameters(), cfg.optim, "generators"), \
            TorchOptimizerGroup(method.discriminators.parameters(), cfg.optim, "discriminators")
    pools = {dom: ImagePool(cfg.optim.pool_size, seed=i) for i, dom in enumerate("ab")}
    method.train()
    for batch in tiny_batches(steps, batch_size=cfg.data.batch_size, size=cfg.model.image_size):
        train_step(method, batch["a"], batch["b"], g, d, pools)
    return {k: v.detach().clone() for k, v in method.state_dict().items()}


@pytest.mark.timeout(120)
def test_one_rank_zero0_skips_the_all_reduce_and_steps_like_plain_adam(one_rank_group, monkeypatch):
    import torch.distributed as tdist

    calls = []
    real = tdist.all_reduce

    def counting(*args, **kwargs):
        calls.append((args[0] if args else kwargs["tensor"]).numel())
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(tdist, "all_reduce", counting)
        deepspeed = trained("deepspeed")
    assert not calls, f"a 1-rank ZeRO-0 step all-reduced tensors of {calls} elements"
    plain = trained("torch")
    assert deepspeed.keys() == plain.keys()
    for key in plain:
        assert torch.equal(deepspeed[key], plain[key]), key


def test_known_harmless_third_party_warnings_are_quiet_unless_asked_for(monkeypatch):
    import warnings

    from crossnet_dist.distributed.quiet import SHOW_WARNINGS_ENV, quiet_known_warnings

    message = "`torch.distributed.all_gather_into_tensor` is deprecated. Please use ..."
    for shown, env in ((False, None), (True, "1")):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if env is None:
                monkeypatch.delenv(SHOW_WARNINGS_ENV, raising=False)
            else:
                monkeypatch.setenv(SHOW_WARNINGS_ENV, env)
            quiet_known_warnings()
            warnings.warn(message, FutureWarning, stacklevel=1)
            warnings.warn("a real problem", UserWarning, stacklevel=1)  # never hidden
        assert [str(w.message) for w in caught] == ([message] if shown else []) + ["a real problem"]


@pytest.mark.timeout(120)
def test_the_discriminators_engine_takes_the_scaled_learning_rate(one_rank_group):
    from crossnet_dist.distributed.engines import build_engine
    from crossnet_dist.methods import build_method

    cfg = tiny_config(None, "dist.zero_stage=0", "optim.lr=4e-4", "optim.disc_lr_scale=2")
    method = build_method(cfg)
    g = build_engine(method.generators, "generators", cfg.optim, cfg.dist, cfg.data.batch_size)
    d = build_engine(method.discriminators, "discriminators", cfg.optim, cfg.dist, cfg.data.batch_size)
    assert (g.lr, d.lr) == (pytest.approx(4e-4), pytest.approx(8e-4))
    d.set_base_lr(1e-4)  # a resume sets each group's base LR again (distributed/checkpoint.py)
    assert d.engine.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
