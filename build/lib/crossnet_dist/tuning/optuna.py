"""Optuna (TPE) as the campaign's searcher (`tune.searcher: optuna`), through Ray Tune's maintained
integration (ray.tune.search.optuna, optuna pinned in requirements.txt).

Tune's OptunaSearch reports each result to Optuna at its `training_iteration` and indexes trials it
created itself. This subclass reports at the training step (`progress/step`), ignores results of
trials it does not know (a resumed campaign's restored trials) and any result without the held-out
score, and completes each trial with its last score.
"""

from __future__ import annotations

from typing import Dict, Optional

from ray.tune.search.optuna import OptunaSearch


class ScoredOptunaSearch(OptunaSearch):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._last_score: Dict[str, float] = {}

    def on_trial_result(self, trial_id: str, result: Dict) -> None:
        if self.metric not in result:
            return
        self._last_score[trial_id] = result[self.metric]
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        self._ot_trials[trial_id].report(result[self.metric], int(result.get("progress/step", 0)))

    def on_trial_complete(self, trial_id: str, result: Optional[Dict] = None, error: bool = False) -> None:
        if result is not None and self.metric not in result and trial_id in self._last_score:
            result = {**result, self.metric: self._last_score[trial_id]}
        self._last_score.pop(trial_id, None)
        super().on_trial_complete(trial_id, result, error)
