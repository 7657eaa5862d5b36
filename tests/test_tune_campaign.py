"""Ray Tune campaigns over the loss weights, for real: every trial a Ray Train run (1 worker,
DeepSpeed ZeRO-2, the tiny CrossNet on tiny on-disk photo crops) scored on the held-out test split
at every checkpoint.

One local Ray for the module (2 CPUs on 127.0.0.1, dashboard on: it releases the placement groups
of stopped trials); trial driver 0.01 CPU + 1 worker x 0.5 CPU, one trial at a time. Scored with
cycle_l1 (cheap) instead of the default fd_efflite0. 1 worker per trial: 2 workers work the same
way (tests/test_dist_training.py covers them) at about twice the time per trial.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.dist_fixtures import LOCAL_ENV, use_local_env

use_local_env()

from tests.helpers import REPO, tiny_batches, write_tiny_dataset  # noqa: E402

pytestmark = pytest.mark.slow
TUNE_TINY = REPO / "jobs" / "configs" / "tune_tiny.yaml"
INJECTED = "injected failure: the loader exploded at batch 2"


def exploding_loader(data_cfg, image_size, seed, rank=0, world_size=1):
    """The real loader, except that it raises at its second batch (a trial that crashes mid-run)."""
    from crossnet_dist.data import build_train_loader

    inner = build_train_loader(data_cfg, image_size=image_size, seed=seed, rank=rank, world_size=world_size)

    class Exploding:
        dataset = getattr(inner, "dataset", None)
        stats = getattr(inner, "stats", None)

        def __iter__(self):
            for i, batch in enumerate(inner):
                if i == 1:
                    raise RuntimeError(INJECTED)
                yield batch

    return Exploding()


@pytest.fixture(scope="module")
def ray_session():
    import ray

    from crossnet_dist.ray_local import start_local_ray

    ray.shutdown()
    saved = os.environ.get("RAY_API_SERVER_ADDRESS")
    try:
        yield start_local_ray(num_cpus=2, log_to_driver=False)
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("RAY_API_SERVER_ADDRESS", None)
        else:
            os.environ["RAY_API_SERVER_ADDRESS"] = saved


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tune-data"))


def overrides(data, storage, name, *extra):
    return [
        f"data.root={data}", f"dist.storage_path={storage}", f"tune.name={name}", "tune.metric=cycle_l1",
        "tune.time_budget_s=600", *extra,
    ]


def tune_config(*items):
    from crossnet_dist.config import load_config

    return load_config(TUNE_TINY, list(items))


def attempts(campaign: Path, trial_id: str) -> int:
    return len((campaign / "runs" / trial_id / "attempts.log").read_text().splitlines())


@pytest.mark.timeout(240)
def test_asha_campaign_of_four_trials_stops_the_worst_and_points_at_the_best(ray_session, data, tmp_path):
    """4 trials: 2 samples of the five weights x lr in {2e-4, 5e-2}; the lr 5e-2 trials are far worse
    at the first rung (step 2) than the lr 2e-4 trial before them, so ASHA stops them there."""
    from crossnet_dist.training.checkpoint import load_translator
    from crossnet_dist.tuning.campaign import run_campaign

    cfg = tune_config(*overrides(data, tmp_path, "asha", "tune.num_samples=2",
                                 "tune.space={optim.lr: {type: grid, values: [2.0e-4, 5.0e-2]}}"))
    t0 = time.time()
    result = run_campaign(cfg)
    elapsed = time.time() - t0
    campaign = tmp_path / "asha"
    rows = {r.trial_id: r for r in result.rows}
    assert len(rows) == 4 and not result.count("errored") and not result.count("no report"), result.rows
    stopped = [r for r in rows.values() if r.status == "stopped"]
    assert stopped, f"ASHA stopped no trial: {result.rows}"
    for r in stopped:  # stopped at a rung: never reached the last step, no serving export
        assert r.step < cfg.train.max_steps and r.value is not None
        assert not (campaign / "runs" / r.trial_id / "generator.pt").exists()
    completed = [r for r in rows.values() if r.status == "completed"]
    assert completed and all(r.step == cfg.train.max_steps for r in completed)
    for r in rows.values():
        assert set(r.params) == {"optim.lr", *(f"loss.crossnet.{k}" for k in
                                               ("gan", "identity", "cross_translation", "cross_identity", "latent_cycle"))}
        assert 0 < r.seconds < elapsed

    # the table, the plot and the best pointer
    csv_lines = (campaign / "trials.csv").read_text().splitlines()
    assert csv_lines[0].startswith("trial_id,status,") and "cycle_l1" in csv_lines[0] and len(csv_lines) == 5
    markdown = (campaign / "trials.md").read_text()
    assert sum(line.startswith("| ") for line in markdown.splitlines()) == 5  # header + 4 trials
    assert "(best)" in markdown and "stopped" in markdown
    assert (campaign / "metric_vs_params.png").read_bytes()[:4] == b"\x89PNG"
    best = json.loads((campaign / "best" / "best.json").read_text())
    assert best["trial_id"] == result.best.trial_id and best["metric"] == "cycle_l1"
    assert best["value"] == min(r.value for r in completed)
    assert best["config"]["optim"]["lr"] == best["params"]["optim.lr"]
    assert best["config"]["loss"]["crossnet"]["gan"] == best["params"]["loss.crossnet.gan"]
    assert (campaign / "best" / "generator.pt").read_bytes() == \
        (campaign / "runs" / best["trial_id"] / "generator.pt").read_bytes()
    method, trained_cfg = load_translator(campaign / "best" / "generator.pt")
    assert trained_cfg.optim.lr == best["params"]["optim.lr"]
    x = tiny_batches(1)[0]["a"]
    with torch.no_grad():
        y = method.translate(x, "a2b")
    assert y.shape == x.shape and torch.isfinite(y).all()


@pytest.mark.timeout(150)
def test_a_crashing_trial_is_reported_as_errored_and_the_campaign_goes_on(ray_session, data, tmp_path):
    """2 trials over dist.loader: the second one's loader raises at its second batch (in the Train
    worker, mid-run); the campaign still completes the other one and points at it."""
    from crossnet_dist.tuning.campaign import run_campaign

    loaders = "[crossnet_dist.data:build_train_loader, tests.test_tune_campaign:exploding_loader]"
    cfg = tune_config(*overrides(data, tmp_path, "crash", "tune.num_samples=1", "train.max_steps=4",
                                 "tune.scheduler=fifo", f"tune.space={{dist.loader: {{type: grid, values: {loaders}}}}}"))
    result = run_campaign(cfg)
    by_loader = {r.params["dist.loader"]: r for r in result.rows}
    good, bad = by_loader["crossnet_dist.data:build_train_loader"], by_loader["tests.test_tune_campaign:exploding_loader"]
    assert bad.status == "errored" and INJECTED in bad.error, bad
    assert good.status == "completed" and good.step == 4, good
    assert result.best.trial_id == good.trial_id
    assert f"errored: {bad.error}" in (tmp_path / "crash" / "trials.md").read_text()


@pytest.mark.timeout(240)
def test_an_interrupted_campaign_resumes_without_rerunning_finished_trials(ray_session, data, tmp_path):
    """`crossnet tune` (a second driver on the module's Ray) is interrupted (SIGINT, as Ctrl-C) once its
    first trial has finished; `--resume` then runs the others and leaves the finished one alone."""
    from crossnet_dist.tuning.campaign import run_campaign

    items = overrides(data, tmp_path, "resumable", "tune.num_samples=3", "train.max_steps=4", "tune.scheduler=fifo")
    env = {**os.environ, **LOCAL_ENV, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "crossnet_dist", "tune", str(TUNE_TINY), *items,
                             "--address", ray_session], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    campaign = tmp_path / "resumable"
    try:
        deadline = time.time() + 150
        while time.time() < deadline and not list(campaign.glob("runs/*/trial.json")) and proc.poll() is None:
            time.sleep(0.5)
        finished_before = sorted(p.parent.name for p in campaign.glob("runs/*/trial.json"))
        assert finished_before, f"no trial finished; driver exited {proc.poll()}"
        time.sleep(2)  # the trial's last report reaches Tune
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    finished_before = sorted(p.parent.name for p in campaign.glob("runs/*/trial.json"))
    assert len(finished_before) < 3, "the campaign ended before it was interrupted"

    cfg = tune_config(*overrides(data, tmp_path, "ignored-on-resume"))
    result = run_campaign(cfg, resume="resumable")
    assert result.name == "resumable" and len(result.rows) == 3, result.rows
    assert all(r.status == "completed" and r.step == 4 for r in result.rows), result.rows
    for trial_id in finished_before:
        assert attempts(campaign, trial_id) == 1, f"finished trial {trial_id} was run again"
    assert result.best is not None and (campaign / "best" / "generator.pt").is_file()
    assert len((campaign / "trials.csv").read_text().splitlines()) == 4
