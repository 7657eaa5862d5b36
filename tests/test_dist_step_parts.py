"""dist.profile_steps splits each DeepSpeed update into backward, waiting on the slower rank,
all-reduce and optimizer step, on 2 real gloo ranks (127.0.0.1): the split changes the timing only,
the trained weights are the ones an unprofiled step gives, and every rank ends equal."""

import os

import pytest
import torch
import torch.multiprocessing as mp

from crossnet_dist.ports import free_port
from tests.dist_fixtures import use_local_env

use_local_env()


def _rank(rank: int, port: int, profile: bool, queue) -> None:
    import torch.distributed as tdist

    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": "2"})
    torch.set_num_threads(1)
    tdist.init_process_group("gloo", rank=rank, world_size=2)
    from crossnet_dist.distributed.engines import build_engine
    from crossnet_dist.distributed.step_parts import StepProfiler
    from crossnet_dist.image_pool import ImagePool
    from crossnet_dist.methods import build_method
    from crossnet_dist.training.seed import seed_everything
    from crossnet_dist.training.step import train_step
    from tests.helpers import tiny_batches, tiny_config

    cfg = tiny_config(None, "dist.zero_stage=0")
    seed_everything(0)
    method = build_method(cfg)
    g = build_engine(method.generators, "generators", cfg.optim, cfg.dist, 2)
    d = build_engine(method.discriminators, "discriminators", cfg.optim, cfg.dist, 2)
    profiler = StepProfiler(2, (g, d)) if profile else None
    pools = {"a": ImagePool(0), "b": ImagePool(0)}
    for batch in tiny_batches(4, batch_size=2, size=cfg.model.image_size)[rank::2]:  # each rank its own data
        if profiler:
            with profiler.step():
                train_step(method, batch["a"], batch["b"], g, d, pools)
        else:
            train_step(method, batch["a"], batch["b"], g, d, pools)
    summed = profiler.window_values() if profiler else None
    # numpy arrays travel by value (a tensor would be shared through a file descriptor of this process)
    queue.put((rank, {k: v.detach().numpy().copy() for k, v in method.state_dict().items()}, summed))
    tdist.destroy_process_group()


def _train(profile: bool) -> dict:
    ctx = mp.get_context("spawn")
    queue, port = ctx.Queue(), free_port()
    procs = [ctx.Process(target=_rank, args=(r, port, profile, queue)) for r in range(2)]
    for p in procs:
        p.start()
    out = {}
    for _ in procs:
        rank, state, parts = queue.get(timeout=240)
        out[rank] = ({k: torch.from_numpy(v) for k, v in state.items()}, parts)
    for p in procs:
        p.join(timeout=60)
    return out


@pytest.mark.timeout(300)
def test_profiled_steps_time_their_parts_and_train_exactly_as_unprofiled_ones():
    profiled, plain = _train(True), _train(False)
    for rank in (0, 1):
        state, parts = profiled[rank]
        backward, wait, allreduce, optimizer, batch_sync, train_step_s, cpu_s = parts
        assert backward > 0 and wait >= 0 and allreduce > 0 and optimizer > 0 and batch_sync == 0
        assert train_step_s > backward + allreduce + optimizer and cpu_s > 0
        for key, value in plain[rank][0].items():
            assert torch.equal(state[key], value), key  # same math: the all-reduce moved, not changed
    assert all(torch.equal(profiled[0][0][k], profiled[1][0][k]) for k in profiled[0][0])  # ranks agree
