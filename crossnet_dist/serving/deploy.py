"""Building the Serve application from a checkpoint and the `serve:` config section.

Two topologies (`serve.topology`):
- split (default): a FastAPI ingress deployment (one replica, no CPUs) checks requests and calls the
  model deployment (N replicas, or autoscaled) through a handle; bad requests never reach a model
  replica, and the handle's queue limit answers 503.
- single: one deployment whose replicas are the ingress and the model at once (N replicas, or
  autoscaled): one hop less per request (the handle call), each replica doing its own admission
  control (503 beyond serve.max_ongoing_requests + serve.max_queued_requests in flight).
"""

from __future__ import annotations

from typing import Any

from ray import serve

from crossnet_dist.serving.app import TranslationIngress, admitted_requests

TOPOLOGIES = ("split", "single")


def serve_settings(serve_cfg: Any) -> dict[str, Any]:
    """The `serve:` config section as a plain dict (what replicas receive)."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(serve_cfg, DictConfig):
        return OmegaConf.to_container(serve_cfg, resolve=True)  # type: ignore[return-value]
    return dict(serve_cfg)


def build_application(checkpoint: str, serve_cfg: Any):
    """The bound Serve application for `checkpoint` with the `serve:` config section."""
    from crossnet_dist.serving.model import TranslatorModel  # torch: only the model replicas import it

    settings = serve_settings(serve_cfg)
    if settings["topology"] == "single":
        return serve.deployment(TranslationIngress, name="TranslationIngress").options(
            # admission control is the replica's own (JSON 503s): Serve's queue in front never fills
            **_replicas(settings), max_ongoing_requests=admitted_requests(settings) + 64,
            ray_actor_options={"num_cpus": settings["cpus_per_replica"], "num_gpus": settings["gpus_per_replica"]},
        ).bind(None, settings, checkpoint)
    model_options: dict[str, Any] = {
        "max_ongoing_requests": settings["max_ongoing_requests"],
        "max_queued_requests": settings["max_queued_requests"],
        "ray_actor_options": {"num_cpus": settings["cpus_per_replica"], "num_gpus": settings["gpus_per_replica"]},
    }
    model_options.update(_replicas(settings))
    model = serve.deployment(TranslatorModel, name="TranslatorModel").options(**model_options)
    ingress_capacity = settings["max_ongoing_requests"] * settings["max_replicas" if settings["autoscale"] else "replicas"]
    ingress = serve.deployment(TranslationIngress, name="TranslationIngress").options(
        num_replicas=1,
        # the ingress must never be the bottleneck: the model handle's queue limit answers 503 first
        max_ongoing_requests=ingress_capacity + max(settings["max_queued_requests"], 0) + 64,
        ray_actor_options={"num_cpus": 0},
    )
    return ingress.bind(model.bind(checkpoint, settings), settings)


def _replicas(settings: dict[str, Any]) -> dict[str, Any]:
    if not settings["autoscale"]:
        return {"num_replicas": settings["replicas"]}
    return {"num_replicas": "auto", "autoscaling_config": {
        "min_replicas": settings["min_replicas"], "initial_replicas": max(settings["min_replicas"], 1),
        "max_replicas": settings["max_replicas"], "target_ongoing_requests": settings["target_ongoing_requests"]}}


def build_app(args: dict[str, Any]):
    """Application builder for Serve config files (RayService `serveConfigV2`):

        import_path: crossnet_dist.serving.deploy:build_app
        args: {checkpoint: s3://bucket/campaign/best/, config: jobs/configs/serve.yaml, overrides: [serve.replicas=2]}

    `revision` (optional, any string) is otherwise unused: Serve versions a config-file application by
    its config, so changing `revision` makes an unchanged `checkpoint` path (a best/ folder a campaign
    rewrote) reload: an in-place upgrade. Imperative deploys (`crossnet serve`) always reload.
    """
    from crossnet_dist.config import ConfigError, load_config

    args = dict(args or {})
    checkpoint = args.pop("checkpoint", None)
    if not checkpoint:
        raise ConfigError("application arg 'checkpoint' is required (a generator.pt or a best-pointer folder)")
    overrides = list(args.pop("overrides", []) or [])
    config_path = args.pop("config", None)
    args.pop("revision", None)
    if args:
        raise ConfigError(f"unknown application args {sorted(args)}: expected checkpoint, config, overrides, revision")
    cfg = load_config(config_path, overrides)
    return build_application(str(checkpoint), cfg.serve)
