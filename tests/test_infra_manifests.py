"""infra/: KubeRay manifests, secret template and Dockerfile, checked structurally (no cluster)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.helpers import REPO

pytestmark = pytest.mark.timeout(60)

INFRA = REPO / "infra"
K8S = INFRA / "k8s"
IMAGE_ROOT = "/home/ray/crossnet"  # WORKDIR of infra/docker/Dockerfile


def documents(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def all_documents() -> list[tuple[str, dict]]:
    """Every Kubernetes object of infra/k8s (kustomization.yaml is kustomize's, not an object)."""
    return [(path.name, doc) for path in sorted(K8S.glob("*.yaml")) if path.name != "kustomization.yaml"
            for doc in documents(path.name)]


def repo_path(image_path: str) -> Path:
    assert image_path.startswith(IMAGE_ROOT + "/"), image_path
    return REPO / image_path[len(IMAGE_ROOT) + 1:]


def pinned_ray_version() -> str:
    match = re.search(r"^ray\[[^\]]*\]==([\d.]+)$", (REPO / "requirements.txt").read_text(), re.M)
    assert match, "requirements.txt pins ray[...]==X.Y.Z"
    return match.group(1)


def cluster_specs() -> list[tuple[str, dict]]:
    specs = [("RayCluster", documents("raycluster.yaml")[0]["spec"])]
    specs.append(("RayJob", documents("rayjob.yaml")[0]["spec"]["rayClusterSpec"]))
    specs.append(("RayService", documents("rayservice.yaml")[0]["spec"]["rayClusterConfig"]))
    return specs


def test_every_manifest_matches_the_trimmed_crd_schema():
    schema = json.loads((INFRA / "schemas" / "kuberay-v1.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    kinds = set()
    for name, doc in all_documents():
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
        assert not errors, f"{name} {doc.get('kind')}: {errors}"
        kinds.add(doc["kind"])
    assert {"RayCluster", "RayJob", "RayService", "Secret"} <= kinds


def test_the_schema_refuses_broken_manifests():
    validator = jsonschema.Draft202012Validator(json.loads((INFRA / "schemas" / "kuberay-v1.schema.json").read_text()))
    good = documents("raycluster.yaml")[0]
    broken = json.loads(json.dumps(good))
    del broken["spec"]["headGroupSpec"]
    assert not validator.is_valid(broken)
    typo = json.loads(json.dumps(good))
    typo["spec"]["workerGroupSpecs"][0]["maxReplica"] = 3
    assert not validator.is_valid(typo)
    wrong_api = dict(good, apiVersion="ray.io/v1alpha1")
    assert not validator.is_valid(wrong_api)


def test_ray_version_image_and_secrets_agree():
    version = pinned_ray_version()
    dockerfile = (INFRA / "docker" / "Dockerfile").read_text()
    assert f"rayproject/ray:{version}-py311" in dockerfile
    assert f"WORKDIR {IMAGE_ROOT}" in dockerfile
    for source in re.findall(r"^COPY (?:--\S+ )*(\S+) ", dockerfile, re.M):
        assert (REPO / source).exists(), f"Dockerfile copies {source}, which does not exist"
    secret_names = {doc["metadata"]["name"] for doc in documents("s3-secret.template.yaml")}
    for kind, spec in cluster_specs():
        assert spec["rayVersion"] == version, kind
        groups = [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]
        for group in groups:
            for container in group["template"]["spec"]["containers"]:
                assert container["image"].split(":")[0] in ("crossnet-dist", "crossnet-dist-gpu"), (kind, container["name"])
                refs = [e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e]
                refs += [e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", []) if "valueFrom" in e]
                assert refs and set(refs) <= secret_names, (kind, refs)
    for doc in documents("s3-secret.template.yaml"):
        for key, value in doc["stringData"].items():
            if "KEY" in key or "TOKEN" in key:
                assert value.startswith("REPLACE_"), f"{key} must stay a placeholder in the template"


def test_rayjob_runs_the_training_entrypoint_with_a_real_config():
    from crossnet_dist.config import load_config

    spec = documents("rayjob.yaml")[0]["spec"]
    argv = shlex.split(spec["entrypoint"])
    assert argv[0] == "python"
    script = repo_path(argv[1])
    assert script.relative_to(REPO).as_posix() == "jobs/train.py" and script.is_file()
    config = repo_path(argv[2])
    cfg = load_config(config, argv[3:])  # every override is a valid key and value
    assert cfg.dist.storage_path.startswith("s3://") and cfg.data.root.startswith("s3://")
    yaml.safe_load(spec["runtimeEnvYAML"])


def test_rayservice_serve_config_is_valid_and_builds_the_app(tmp_path):
    from ray.serve.schema import ServeDeploySchema

    from crossnet_dist.config import load_config
    from crossnet_dist.serving import deploy as serving_app

    spec = documents("rayservice.yaml")[0]["spec"]
    serve_config = ServeDeploySchema.model_validate(yaml.safe_load(spec["serveConfigV2"]))
    (application,) = serve_config.applications
    module_name, _, attribute = application.import_path.partition(":")
    assert module_name == serving_app.__name__ and getattr(serving_app, attribute) is serving_app.build_app
    args = dict(application.args)
    assert args["checkpoint"].startswith("s3://") and args["checkpoint"].endswith("/best/")
    cfg = load_config(repo_path(args["config"]), args["overrides"])
    assert cfg.serve.autoscale and cfg.serve.gpus_per_replica == 1
    built = serving_app.build_app({**args, "config": str(repo_path(args["config"]))})
    assert type(built).__name__ == "Application"
    with pytest.raises(Exception, match="unknown application args"):
        serving_app.build_app({**args, "replica": 2})
    ports = {p["name"]: p["port"] for p in spec["serveService"]["spec"]["ports"]}
    assert ports["serve"] == serve_config.http_options.port == 8000


def test_monitors_select_the_pods_and_service_the_manifests_create():
    pod_monitor, service_monitor = documents("monitoring.yaml")
    wanted = pod_monitor["spec"]["selector"]["matchLabels"]
    port = pod_monitor["spec"]["podMetricsEndpoints"][0]["port"]
    for kind, spec in cluster_specs():
        for group in [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]:
            template = group["template"]
            assert wanted.items() <= template["metadata"]["labels"].items(), kind
            container = template["spec"]["containers"][0]
            assert port in {p.get("name") for p in container["ports"]}, kind
            assert group["rayStartParams"]["metrics-export-port"] == "8080"
    serve_service = documents("rayservice.yaml")[0]["spec"]["serveService"]
    assert service_monitor["spec"]["selector"]["matchLabels"].items() <= serve_service["metadata"]["labels"].items()
    assert service_monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    for monitor in (pod_monitor, service_monitor):  # what kube-prometheus-stack's Prometheus selects on
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def schema_validator():
    return jsonschema.Draft202012Validator(json.loads((INFRA / "schemas" / "kuberay-v1.schema.json").read_text()))


def test_the_schema_records_its_kuberay_release_and_refuses_deprecated_fields():
    schema = json.loads((INFRA / "schemas" / "kuberay-v1.schema.json").read_text())
    assert re.fullmatch(r"v\d+\.\d+\.\d+", schema["x-kuberay-release"])
    service = documents("rayservice.yaml")[0]
    for field in ("serviceUnhealthySecondThreshold", "deploymentUnhealthySecondThreshold"):
        assert not schema_validator().is_valid({**service, "spec": {**service["spec"], field: 300}}), field
    assert service["metadata"]["annotations"]["ray.io/initializing-timeout"] == "15m"


@pytest.mark.parametrize("kind", ["RayCluster", "RayJob", "RayService"])
def test_every_cluster_has_ray_token_auth_and_leaves_the_dashboard_host_to_kuberay(kind):
    spec = dict(cluster_specs())[kind]
    assert spec["authOptions"] == {"mode": "token"}
    for group in [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]:
        assert "dashboard-host" not in group["rayStartParams"]


def test_the_network_policy_opens_only_the_serve_port_to_everyone():
    (policy,) = documents("network-policy.yaml")
    selected = policy["spec"]["podSelector"]["matchLabels"]
    for kind, spec in cluster_specs():
        for group in [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]:
            assert selected.items() <= group["template"]["metadata"]["labels"].items(), kind
    open_to_all = [rule for rule in policy["spec"]["ingress"] if "from" not in rule]
    assert [port["port"] for rule in open_to_all for port in rule["ports"]] == [8000]
    to_operator = next(rule for rule in policy["spec"]["ingress"]
                       if any("kuberay-operator" in json.dumps(peer) for peer in rule.get("from", [])))
    assert {port["port"] for port in to_operator["ports"]} == {8265, 8000}


def kustomization() -> dict:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def render_images(kustomize: dict) -> list[str]:
    """What kustomize's image transformer makes of every container image of the listed resources."""
    table = {entry["name"]: entry for entry in kustomize["images"]}
    rendered = []
    for resource in kustomize["resources"]:
        for doc in documents(resource):
            for image in re.findall(r"'image': '([^']+)'", str(doc)):
                name, _, tag = image.partition(":")
                entry = table[name]  # every image is one the kustomization sets
                rendered.append(f"{entry.get('newName', name)}:{entry.get('newTag', tag)}")
    return rendered


def test_the_kustomization_lists_every_manifest_and_sets_every_image():
    kustomize = kustomization()
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "s3-secret.template.yaml"}
    assert set(kustomize["resources"]) == manifests
    overlay = {**kustomize, "images": [{**e, "newName": f"registry.test/{e['name']}", "newTag": "9.9"}
                                      for e in kustomize["images"]]}
    images = render_images(overlay)
    assert images and all(image.startswith("registry.test/crossnet-dist") and image.endswith(":9.9") for image in images)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed (the rendering above still ran)")
def test_kubectl_kustomize_renders_the_images_as_the_kustomization_says():
    done = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rendered = sorted(re.findall(r"image: (\S+)", done.stdout))
    assert rendered == sorted(render_images(kustomization()))


def test_one_dockerfile_builds_both_images_and_the_cpu_one_takes_cpu_torch_wheels():
    dockerfile = (INFRA / "docker" / "Dockerfile").read_text()
    assert re.search(r"^ARG VARIANT=cpu$", dockerfile, re.M)
    assert "rayproject/ray:" in dockerfile and "-py311-${VARIANT}" in dockerfile
    cpu_step = re.search(r'if \[ "\$\{VARIANT\}" = "cpu" \]; then(.*?)fi', dockerfile, re.S).group(1)
    assert "--index-url" in cpu_step and "download.pytorch.org/whl/cpu" in dockerfile
    pins = re.findall(r"^(torch|torchvision)==\S+$", (REPO / "requirements.txt").read_text(), re.M)
    assert sorted(pins) == ["torch", "torchvision"]  # the step installs requirements.txt's own pins
    assert "grep -E '^(torch|torchvision)==' requirements.txt" in cpu_step


def test_every_rayservice_node_gives_request_heads_the_configured_deadline():
    from crossnet_dist.config import load_config
    from crossnet_dist.serving.header_deadline import proxy_environment

    cluster = documents("rayservice.yaml")[0]["spec"]["rayClusterConfig"]
    templates = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]
    expected = proxy_environment(load_config(None).serve.header_timeout_s)
    for template in templates:
        for container in template["spec"]["containers"]:
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            assert {k: env.get(k) for k in expected} == expected, container["name"]


@pytest.fixture(scope="module")
def kuberay():
    from tests import kuberay_crds

    return kuberay_crds


def test_every_kuberay_manifest_passes_the_real_crds_strictly(kuberay):
    validators = kuberay.validators()
    checked = set()
    for name, doc in all_documents():
        if doc["apiVersion"].startswith("ray.io/"):
            assert doc["apiVersion"] not in kuberay.deprecated_versions(), (name, doc["apiVersion"])
            validator = validators[(doc["apiVersion"], doc["kind"])]
            assert not kuberay.errors(validator, doc), f"{name} {doc['kind']}: {kuberay.errors(validator, doc)}"
            checked.add(doc["kind"])
    assert checked == {"RayCluster", "RayJob", "RayService"}


def test_the_real_crds_refuse_an_unknown_field_a_wrong_type_and_a_missing_required_field(kuberay):
    validators = kuberay.validators()
    good = documents("raycluster.yaml")[0]
    validator = validators[(good["apiVersion"], "RayCluster")]
    typo = json.loads(json.dumps(good))
    typo["spec"]["workerGroupSpecs"][0]["maxReplica"] = 3
    assert any("maxReplica" in e for e in kuberay.errors(validator, typo))
    deep_typo = json.loads(json.dumps(good))
    deep_typo["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    assert any("imagePullPolice" in e for e in kuberay.errors(validator, deep_typo))
    wrong_type = json.loads(json.dumps(good))
    wrong_type["spec"]["workerGroupSpecs"][0]["replicas"] = "two"
    assert kuberay.errors(validator, wrong_type)
    missing = json.loads(json.dumps(good))
    del missing["spec"]["headGroupSpec"]
    assert any("headGroupSpec" in e for e in kuberay.errors(validator, missing))
    assert "ray.io/v1alpha1" in kuberay.deprecated_versions()
