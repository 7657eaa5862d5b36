"""The `tune:` config section and the campaign's checks, tables and best-trial choice (no Ray)."""

import math

import pytest

from crossnet_dist.config import ConfigError, load_config
from tests.helpers import REPO

TUNE_TINY = REPO / "jobs" / "configs" / "tune_tiny.yaml"
TUNE_FULL = REPO / "jobs" / "configs" / "tune.yaml"



def campaign_specs(cfg):
    from crossnet_dist.config import config_with
    from crossnet_dist.tuning.checks import check_campaign

    return check_campaign(cfg, config_with)

def cfg_with(*overrides, path=TUNE_TINY):
    return load_config(path, list(overrides))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("override, key", [
    ("tune.scheduler=hyperband", "tune.scheduler"),
    ("tune.pbt.quantile_fraction=0.6", "tune.pbt.quantile_fraction"),
    ("tune.pbt.resample_probability=1.5", "tune.pbt.resample_probability"),
    ("tune.pbt.perturbation_factors=[1.2]", "tune.pbt.perturbation_factors"),
    ("tune.pbt.perturbation_interval=3", "tune.pbt.perturbation_interval"),  # not a multiple of checkpoint_every=2
    ("dist.init_from=gs://bucket/run/step_00000002", "dist.init_from"),
    ("tune.searcher=hyperopt", "tune.searcher"),
    ("tune.mode=best", "tune.mode"),
    ("tune.num_samples=0", "tune.num_samples"),
    ("tune.time_budget_s=0", "tune.time_budget_s"),
    ("tune.asha.reduction_factor=1", "tune.asha.reduction_factor"),
    ("tune.name=a/b", "tune.name"),
    ("tune.space={optim.lr: {type: uniform, low: 1.0e-3, high: 1.0e-4}}", "tune.space.optim.lr.high"),
    ("tune.space={optim.lr: {type: loguniform, low: 0, high: 1.0e-4}}", "tune.space.optim.lr.low"),
    ("tune.space={optim.lr: {type: choice}}", "tune.space.optim.lr.values"),
    ("tune.space={optim.lr: {type: normal, low: 0, high: 1}}", "tune.space.optim.lr.type"),
    ("tune.space={optim.lr: {typo: 1}}", "tune.space.optim.lr.typo"),
])
def test_bad_tune_values_name_their_key(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        cfg_with(override)


@pytest.mark.timeout(60)
def test_the_space_is_checked_against_the_config_before_any_trial():

    specs = campaign_specs(cfg_with())
    assert sorted(specs) == sorted(f"loss.crossnet.{k}" for k in
                                   ("gan", "identity", "cross_translation", "cross_identity", "latent_cycle"))
    # an empty space = the five CrossNet weights
    assert sorted(campaign_specs(cfg_with("tune.space={}", path=REPO / "jobs" / "configs" / "tiny.yaml"))) == sorted(specs)
    full = campaign_specs(cfg_with(path=TUNE_FULL))
    assert "optim.lr" in full and len(full) == 6
    bad = {
        "tune.space={loss.crossnet.nope: {type: uniform, low: 0, high: 1}}": "has no key",
        "tune.space={loss.crossnet: {type: uniform, low: 0, high: 1}}": "is a section",
        "tune.space={loss.crossnet.gan: {type: grid, values: [1.0, -1.0]}}": "value -1.0 is refused",
        "tune.space={loss.crossnet.gan: {type: uniform, low: -1, high: 1}}": "loss weights must be >= 0",
        "tune.space={dist.zero_stage: {type: choice, values: [2, 4]}}": "dist.zero_stage",
        "tune.metric=psnr": "unknown metric",
        "tune.asha.grace_period=8": "tune.asha.grace_period",
    }
    for override, message in bad.items():
        with pytest.raises(ConfigError, match=message):
            campaign_specs(cfg_with(override))
    with pytest.raises(ConfigError, match="tune.asha.max_t"):
        campaign_specs(cfg_with("train.max_steps=0"))
    with pytest.raises(ConfigError, match="use choice instead of grid"):
        cfg_with("tune.searcher=optuna", "tune.space={optim.lr: {type: grid, values: [1.0e-4]}}")


@pytest.mark.timeout(60)
def test_paired_metrics_are_tune_objectives_with_their_direction_checked():

    assert campaign_specs(cfg_with("tune.metric=paired_l1"))  # lower is better, like the default mode
    assert campaign_specs(cfg_with("tune.metric=paired_ssim_b2a", "tune.mode=max"))
    with pytest.raises(ConfigError, match="'tune.mode'.*higher.*tune.mode=max"):
        campaign_specs(cfg_with("tune.metric=paired_ssim"))
    with pytest.raises(ConfigError, match="'tune.mode'.*lower.*tune.mode=min"):
        campaign_specs(cfg_with("tune.metric=paired_l1", "tune.mode=max"))


@pytest.mark.timeout(60)
def test_pbt_settings_are_checked_and_become_ray_pbt():
    from ray.tune.schedulers import PopulationBasedTraining

    from crossnet_dist.tuning.campaign import _scheduler

    with pytest.raises(ConfigError, match="'tune.searcher'.*use searcher=random"):
        cfg_with("tune.scheduler=pbt", "tune.searcher=optuna")
    with pytest.raises(ConfigError, match="'tune.space'.*not a grid"):
        campaign_specs(cfg_with("tune.scheduler=pbt", "tune.space={optim.lr: {type: grid, values: [1.0e-4]}}",
                                path=REPO / "jobs" / "configs" / "tiny.yaml"))
    with pytest.raises(ConfigError, match="'tune.pbt.perturbation_interval'.*ever perturbed"):
        campaign_specs(cfg_with("tune.scheduler=pbt", "tune.pbt.perturbation_interval=8"))
    full = cfg_with(path=REPO / "jobs" / "configs" / "tune_pbt.yaml")
    assert isinstance(_scheduler(full, campaign_specs(full)), PopulationBasedTraining)
    cfg = cfg_with("tune.scheduler=pbt", "tune.pbt.quantile_fraction=0.5")
    pbt = _scheduler(cfg, campaign_specs(cfg))
    assert isinstance(pbt, PopulationBasedTraining)
    assert pbt._time_attr == "progress/step" and pbt._perturbation_interval == 2  # = dist.checkpoint_every
    assert pbt._quantile_fraction == 0.5 and sorted(pbt._hyperparam_mutations) == sorted(
        f"loss.crossnet.{k}" for k in ("gan", "identity", "cross_translation", "cross_identity", "latent_cycle"))



@pytest.mark.timeout(60)
def test_pbt_never_moves_a_trial_at_its_last_step():
    """A move at the last step would train nothing of its own: the trial would only copy the donor's
    final model. The last report is passed through; earlier ones reach Ray's PBT."""
    from types import SimpleNamespace

    from ray.tune.experiment import Trial

    from crossnet_dist.tuning.campaign import _scheduler

    cfg = cfg_with("tune.scheduler=pbt")
    pbt = _scheduler(cfg, campaign_specs(cfg))
    trial = Trial("run_trial", config={"loss.crossnet.gan": 1.0}, stub=True)
    controller = SimpleNamespace(search_alg=None, get_trials=lambda: [trial])  # what PBT reads of it
    pbt.set_search_properties("eval/cycle_l1", "min")  # what Tune's TuneConfig(metric, mode) does
    pbt.on_trial_add(controller, trial)
    last = cfg.train.max_steps
    assert pbt.on_trial_result(controller, trial, {"progress/step": last, "eval/cycle_l1": 0.5}) == "CONTINUE"
    assert pbt._trial_state[trial].last_score is None  # not scored, not compared, not moved
    pbt.on_trial_result(controller, trial, {"progress/step": last - 2, "eval/cycle_l1": 0.5})
    assert pbt._trial_state[trial].last_score == -0.5

@pytest.mark.timeout(60)
def test_pbt_mutations_leave_grids_alone_and_perturbations_stay_in_range():
    from ray.tune.schedulers.pbt import _explore

    from crossnet_dist.tuning.space import ClipToSpace, pbt_mutations

    specs = {
        "optim.lr": {"type": "grid", "values": [1e-4, 2e-4]},
        "loss.crossnet.identity": {"type": "uniform", "low": 2.0, "high": 4.0},
        "model.n_translator_blocks": {"type": "randint", "low": 1, "high": 4},
        "data.batch_size": {"type": "choice", "values": [2, 4, 8]},
    }
    mutations = pbt_mutations(specs)
    assert sorted(mutations) == ["data.batch_size", "loss.crossnet.identity", "model.n_translator_blocks"]
    assert mutations["data.batch_size"] == [2, 4, 8]
    clip = ClipToSpace(specs)
    assert clip({"loss.crossnet.identity": 4.8, "model.n_translator_blocks": 5, "optim.lr": 9.0}) == \
        {"loss.crossnet.identity": 4.0, "model.n_translator_blocks": 3, "optim.lr": 9.0}
    assert clip({"loss.crossnet.identity": 1.6, "model.n_translator_blocks": 0})["loss.crossnet.identity"] == 2.0
    config = {"optim.lr": 2e-4, "loss.crossnet.identity": 3.9, "model.n_translator_blocks": 3, "data.batch_size": 8}
    for _ in range(20):  # x1.2 / x0.8 or a neighbouring choice, never out of range; the grid value is kept
        new, _ = _explore(config, mutations, 0.0, (1.2, 0.8), clip)
        assert 2.0 <= new["loss.crossnet.identity"] <= 4.0 and 1 <= new["model.n_translator_blocks"] <= 3
        assert new["data.batch_size"] in (2, 4, 8) and new["optim.lr"] == 2e-4


@pytest.mark.timeout(60)
def test_resources_that_would_deadlock_are_refused():
    from crossnet_dist.tuning.checks import check_resources

    check_resources(cfg_with(), 2)  # 0.01 + 1 x 0.5
    check_resources(cfg_with("dist.num_workers=2"), 2)  # 0.01 + 2 x 0.5
    with pytest.raises(ConfigError, match="dist.cpus_per_worker.*never start"):
        check_resources(cfg_with("dist.num_workers=2", "dist.cpus_per_worker=1"), 2)


@pytest.mark.timeout(60)
def test_tune_space_trial_configs_and_trial_count():
    from ray import tune

    from crossnet_dist.config import config_with as trial_config
    from crossnet_dist.tuning.space import space_specs, trial_count, tune_space

    cfg = cfg_with("tune.space={optim.lr: {type: grid, values: [1.0e-4, 2.0e-4]}, loss.crossnet.gan: "
                   "{type: quniform, low: 0.5, high: 2, q: 0.5}}", "tune.num_samples=3")
    specs = space_specs(cfg)
    space = tune_space(specs)
    assert space["optim.lr"] == tune.grid_search([1.0e-4, 2.0e-4])
    assert type(space["loss.crossnet.gan"]).__name__ == "Float"
    assert trial_count(specs, 3) == 6
    import numpy as np

    from crossnet_dist.config import to_container

    trial = trial_config(to_container(cfg), {"optim.lr": np.float64(1e-4), "loss.crossnet.gan": 1.5})
    assert trial.optim.lr == 1e-4 and trial.loss.crossnet.gan == 1.5 and trial.loss.crossnet.identity == 3.0


@pytest.mark.timeout(60)
def test_tables_plot_and_best_choice():
    from crossnet_dist.tuning.results import TrialRow, pick_best, plot_png, table_csv, table_markdown

    specs = {"loss.crossnet.gan": {}, "optim.lr": {}}
    rows = [
        TrialRow("t0", "completed", {"loss.crossnet.gan": 1.0, "optim.lr": 2e-4}, 0.5, 8, 30.0),
        TrialRow("t1", "stopped", {"loss.crossnet.gan": 2.0, "optim.lr": 5e-2}, 0.1, 2, 12.0),  # not a candidate
        TrialRow("t2", "completed", {"loss.crossnet.gan": 0.5, "optim.lr": 1e-4}, 0.4, 8, 31.0),
        TrialRow("t3", "completed", {"loss.crossnet.gan": 0.7, "optim.lr": 1e-4}, math.inf, 8, 29.0),  # diverged
        TrialRow("t4", "errored", {"loss.crossnet.gan": 0.9, "optim.lr": 1e-4}, None, 1, None, "RuntimeError: boom"),
    ]
    assert pick_best(rows, "min").trial_id == "t2"
    assert pick_best(rows, "max").trial_id == "t0"
    assert pick_best(rows[1:2], "min") is None
    csv_text = table_csv(rows, specs, "fd_efflite0")
    assert csv_text.splitlines()[0] == "trial_id,status,loss.crossnet.gan,optim.lr,fd_efflite0,steps,seconds,error"
    assert "t4,errored,0.9,0.0001,,1,,RuntimeError: boom" in csv_text
    md = table_markdown(rows, specs, "fd_efflite0", pick_best(rows, "min"))
    assert "| t2 (best) | completed | 0.5 | 0.0001 | 0.4 | 8 | 31 |" in md
    assert "errored: RuntimeError: boom" in md
    assert plot_png(rows, specs, "fd_efflite0")[:4] == b"\x89PNG"


@pytest.mark.timeout(60)
def test_tune_command_is_registered():
    from crossnet_dist.cli import parse

    args = parse(["tune", str(TUNE_TINY), "tune.num_samples=2", "--resume", "camp", "optim.lr=1e-4", "--address", "x:1"])
    assert args.command == "tune" and args.resume == "camp" and args.address == "x:1"
    assert args.overrides == ["tune.num_samples=2", "optim.lr=1e-4"]


def test_a_trial_prunes_only_checkpoints_it_has_scored(tmp_path):
    import pyarrow.fs as pafs

    from crossnet_dist.tuning.trial import prune_scored

    run = tmp_path / "run"
    for step in (2, 4, 6, 8):
        (run / f"step_{step:08d}").mkdir(parents=True)
    prune_scored(pafs.LocalFileSystem(), str(run / "step_00000006"), keep=2)  # step 8 is not scored yet
    assert sorted(p.name for p in run.iterdir()) == ["step_00000004", "step_00000006", "step_00000008"]
    prune_scored(pafs.LocalFileSystem(), str(run / "step_00000008"), keep=0)  # 0 = keep all (PBT)
    assert len(list(run.iterdir())) == 3
