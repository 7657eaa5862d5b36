"""Ray Tune's PBT, minus the one move that does nothing useful: a move at a trial's last step.

Tune's PBT does not know when a trial ends. Scored at its last step, a weak trial can still be
sent to a stronger one's checkpoint, and then it trains no step of its own: it only copies the
donor's final model and reports the perturbed values beside it. Skipping that report keeps every
move a real continuation and keeps the trial's own final model and values.
"""

from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler


class PopulationBasedTrainingBeforeLastStep(PopulationBasedTraining):
    def __init__(self, *, last_step: int, **kwargs):
        super().__init__(**kwargs)
        self.last_step = last_step

    def on_trial_result(self, tune_controller, trial, result):
        if result.get(self._time_attr, 0) >= self.last_step:
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)
