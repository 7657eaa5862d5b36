"""Evaluation of trained translators: distribution distances, reconstructions, an HTML report.

`evaluate(checkpoint, data_url)` returns {metric: value}; `crossnet eval` also writes the report.
Names are imported on first use, so that `crossnet --help` does not pay for torch.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "EvalConfig": "crossnet_dist.evaluation.config",
    "load_eval_config": "crossnet_dist.evaluation.config",
    "EvalResult": "crossnet_dist.evaluation.scoring",
    "evaluate": "crossnet_dist.evaluation.report",
    "run_evaluation": "crossnet_dist.evaluation.scoring",
    "InceptionWeightsMissing": "crossnet_dist.evaluation.features",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'crossnet_dist.evaluation' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
