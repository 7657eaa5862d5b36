"""Validators from KubeRay's real CRDs (../shared/kuberay-crds-v1.7.0, or $CROSSNET_KUBERAY_CRDS).

The CRDs' openAPIV3Schema becomes a JSON schema checked as `kubectl apply --validate=strict` would:
an unknown field anywhere is refused (Kubernetes would prune it silently otherwise), except under
`x-kubernetes-preserve-unknown-fields`; `x-kubernetes-int-or-string` takes either; `nullable` takes
null. Not checked: the CEL rules (`x-kubernetes-validations`), which need a Kubernetes API server.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.helpers import REPO

KUBERAY_RELEASE = "v1.7.0"  # commit 59d663a, Apache-2.0 (the LICENSE is beside the CRDs)
CRD_DIR = Path(os.environ.get("CROSSNET_KUBERAY_CRDS", REPO.parent / "shared" / f"kuberay-crds-{KUBERAY_RELEASE}"))


def strict(schema: Any) -> Any:
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) if k in ("items", "additionalProperties", "anyOf", "allOf", "oneOf", "not") else v
           for k, v in schema.items() if k != "properties"}
    if "properties" in schema:
        out["properties"] = {name: strict(s) for name, s in schema["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in schema:
            out["additionalProperties"] = False
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def load(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # nosec B506 - safe loaders


@functools.cache
def validators() -> dict[tuple[str, str], jsonschema.Draft202012Validator]:
    """(apiVersion, kind) -> validator, for every served version of every CRD in CRD_DIR."""
    found = {}
    for path in sorted(CRD_DIR.glob("ray.io_*.yaml")):
        crd = load(path)
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schema = strict(version["schema"]["openAPIV3Schema"])
                found[(f"{group}/{version['name']}", kind)] = jsonschema.Draft202012Validator(schema)
    assert {kind for _, kind in found} == {"RayCluster", "RayJob", "RayService"}, f"KubeRay CRDs missing in {CRD_DIR}"
    return found


@functools.cache
def deprecated_versions() -> frozenset[str]:
    versions: set[str] = set()
    for path in sorted(CRD_DIR.glob("ray.io_*.yaml")):
        crd = load(path)
        versions |= {f"{crd['spec']['group']}/{v['name']}" for v in crd["spec"]["versions"] if v.get("deprecated")}
    return frozenset(versions)


def errors(validator: jsonschema.Draft202012Validator, doc: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
