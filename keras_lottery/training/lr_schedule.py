"""The step-wise learning-rate schedule of the papers: linear warm-up, then drops at milestones."""

import keras


@keras.saving.register_keras_serializable(package="keras_lottery")
class StepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``lr(step) = base_lr * min(1, (step + 1) / warmup_steps) * gamma ** (milestones passed)``.

    Steps are the optimizer's iteration count, so restoring an optimizer at step k (rewinding)
    replays the schedule from k.
    """

    def __init__(self, base_lr, warmup_steps=0, milestones=(), gamma=0.1):
        self.base_lr = float(base_lr)
        self.warmup_steps = int(warmup_steps)
        self.milestones = [int(m) for m in milestones]
        self.gamma = float(gamma)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        lr = keras.ops.convert_to_tensor(self.base_lr, "float32")
        if self.warmup_steps > 0:
            lr = lr * keras.ops.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
        for milestone in self.milestones:
            lr = keras.ops.where(step >= float(milestone), lr * self.gamma, lr)
        return lr

    def get_config(self):
        return {"base_lr": self.base_lr, "warmup_steps": self.warmup_steps,
                "milestones": list(self.milestones), "gamma": self.gamma}
