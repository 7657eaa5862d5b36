"""Distributed training pieces that need no cluster: the dist config section, DeepSpeed config
dicts, run storage and names, and the Ray cluster launcher files."""

from pathlib import Path

import pytest
import yaml

from crossnet_dist.config import ConfigError, load_config
from tests.helpers import REPO, TINY_CONFIG


@pytest.mark.timeout(30)
@pytest.mark.parametrize("override, key", [
    ("dist.zero_stage=4", "dist.zero_stage"),
    ("dist.num_workers=0", "dist.num_workers"),
    ("dist.grad_accumulation=0", "dist.grad_accumulation"),
    ("dist.placement_strategy=RANDOM", "dist.placement_strategy"),
    ("dist.checkpoint_every=0", "dist.checkpoint_every"),
    ("dist.max_failures=-2", "dist.max_failures"),
    ("dist.loader=no_colon", "dist.loader"),
    ("dist.run_name=a/b", "dist.run_name"),
    ("dist.zero_stag=2", "dist.zero_stag"),
    ("dist.init_from=gs://b/run/step_00000002", "dist.init_from"),
    ("train.compile=true dist.zero_stage=3", "train.compile"),
    ("dist.profile_steps=true dist.zero_stage=2", "dist.profile_steps"),
])
def test_bad_dist_values_name_their_key(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load_config(TINY_CONFIG, override.split())


@pytest.mark.timeout(30)
def test_tiny_dist_config_and_deepspeed_dicts():
    from crossnet_dist.distributed.engines import deepspeed_config

    cfg = load_config(REPO / "jobs" / "configs" / "tiny_dist.yaml")
    assert (cfg.dist.num_workers, cfg.dist.zero_stage, cfg.model.gen_channels) == (2, 2, 16)
    ds = deepspeed_config(cfg.dist, micro_batch_size=4)
    assert ds["zero_optimization"] == {"stage": 2} and ds["bf16"] == {"enabled": False}
    assert ds["train_micro_batch_size_per_gpu"] == 4 and ds["gradient_accumulation_steps"] == 1
    assert type(ds) is dict and all(type(v) in (int, float, bool, dict) for v in ds.values())  # plain values
    ds3 = deepspeed_config(load_config(TINY_CONFIG, ["dist.zero_stage=3", "dist.grad_clip=1.5",
                                                      "dist.zero3_persistence_threshold=0"]).dist, 4)
    assert ds3["zero_optimization"] == {"stage": 3, "stage3_param_persistence_threshold": 0}
    assert ds3["gradient_clipping"] == 1.5 and ds3["bf16"] == {"enabled": False}  # bf16 is autocast


@pytest.mark.timeout(30)
def test_run_storage_names_and_s3_endpoint(tmp_path, monkeypatch):
    from crossnet_dist.distributed.driver import choose_run_name
    from crossnet_dist.storage.runs import resolve_storage

    storage = resolve_storage(str(tmp_path / "runs"))
    cfg = load_config(TINY_CONFIG, ["dist.run_name=exp1"])
    assert choose_run_name(cfg, storage, None) == "exp1"
    with pytest.raises(ConfigError, match="--resume: no runs"):
        choose_run_name(cfg, storage, "")
    (tmp_path / "runs" / "exp1").mkdir(parents=True)
    (tmp_path / "runs" / "exp2").mkdir()
    with pytest.raises(ConfigError, match="already exists.*--resume exp1"):
        choose_run_name(cfg, storage, None)
    assert choose_run_name(cfg, storage, "") == "exp2"  # the newest
    assert choose_run_name(cfg, storage, "exp1") == "exp1"
    with pytest.raises(ConfigError, match="'nope' not found"):
        choose_run_name(cfg, storage, "nope")
    assert storage.run_url("exp1", "generator.pt") == f"{tmp_path}/runs/exp1/generator.pt"

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3 = resolve_storage("s3://bucket/runs/")
    assert (s3.url, s3.fs_path, s3.filesystem.type_name) == ("s3://bucket/runs", "bucket/runs", "s3")
    assert s3.run_url("r", "generator.pt") == "s3://bucket/runs/r/generator.pt"
    with pytest.raises(ValueError, match="dist.storage_path"):
        resolve_storage("gs://bucket/x")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["aws-gpu.yaml", "local.yaml"])
def test_cluster_launcher_files_validate_and_keep_the_dashboard_on_localhost(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((REPO / "cluster" / name).read_text())
    validate_config(prepare_config(config))
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head
    assert Path(REPO / "cluster" / "README.md").is_file()
