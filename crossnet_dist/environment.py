"""Is this Python able to run the project? Checked first by the `ray job submit` entrypoints, whose
driver runs in the CLUSTER's Python environment, not the submitter's: a cluster started outside the
project's environment would otherwise fail deep inside an import with a bare ModuleNotFoundError.

Only the standard library is imported here, so the check itself cannot fail for want of the stack.
"""

from __future__ import annotations

import importlib.util
import sys

# import name -> distribution (requirements.txt) for what every job imports before any work
REQUIRED_MODULES = {
    "torch": "torch", "torchvision": "torchvision", "ray": "ray[train,tune,serve]", "deepspeed": "deepspeed",
    "omegaconf": "omegaconf", "s3fs": "s3fs", "prometheus_client": "prometheus-client", "PIL": "pillow",
    "numpy": "numpy", "skimage": "scikit-image",
}
PYTHON = (3, 11)


def missing_distributions() -> list[str]:
    return [dist for module, dist in REQUIRED_MODULES.items() if importlib.util.find_spec(module) is None]


def stack_problem() -> str | None:
    """One line saying what this interpreter lacks and how to fix it, or None when it has the stack."""
    problems = []
    if sys.version_info[:2] != PYTHON:
        problems.append(f"it is Python {sys.version_info.major}.{sys.version_info.minor}, the project needs "
                        f"{PYTHON[0]}.{PYTHON[1]}")
    missing = missing_distributions()
    if missing:
        problems.append(f"it lacks {', '.join(missing)}")
    if not problems:
        return None
    return (f"this Python ({sys.executable}) cannot run crossnet-dist: {'; '.join(problems)}. A job's driver runs in "
            "the Ray cluster's Python environment: start the cluster (`ray start`) from an environment with "
            "requirements.txt installed; or name a Python that has it in the entrypoint and as the runtime_env's "
            "py_executable ('{\"py_executable\": \"/path/to/venv/bin/python\"}' -- /path/to/venv/bin/python jobs/...); "
            "or submit with '{\"pip\": \"requirements.txt\"}'; or run the project's image (infra/docker/Dockerfile)")


def require_stack(job: str) -> None:
    """Exits with status 2 and one line on stderr when this Python cannot run the project."""
    problem = stack_problem()
    if problem is not None:
        print(f"crossnet {job} job: error: {problem}", file=sys.stderr)
        sys.exit(2)
