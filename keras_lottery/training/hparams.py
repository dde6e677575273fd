"""Hyper-parameters of a model and of its training, as dataclasses that become absl flags."""

import dataclasses

from keras_lottery import models
from keras_lottery.training import durations

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")


@dataclasses.dataclass(frozen=True)
class ModelHparams:
    """Which zoo model, and the seed that fixes its initialization.

    Attributes:
      model: a zoo name (``lenet_300_100``, ``conv2/4/6``, ``vgg16``, ``resnet20``, ``resnet32``, ..., ``vit_4``).
      model_seed: seeds every initializer of the model; two runs with the same seed start equal.
    """

    model: str = "lenet_300_100"
    model_seed: int = 0

    def validate(self):
        """Raises ValueError when the model name is not in the zoo."""
        models.check_name(self.model)


@dataclasses.dataclass(frozen=True)
class TrainingHparams:
    """How a model is trained.

    Attributes:
      optimizer: one of sgd, adam, adamw, rmsprop.
      lr: the base learning rate.
      momentum: SGD / RMSprop momentum.
      nesterov: Nesterov momentum for SGD.
      weight_decay: decoupled weight decay (Keras' optimizer ``weight_decay``: each step multiplies the
        weights by 1 - lr x weight_decay), 0 for none. A paper's SGD weight decay w with momentum m
        (PyTorch's, an L2 term before the momentum) shrinks about as much as w / (1 - m) here.
      clipnorm: clip each gradient to this norm, 0 for none.
      steps: the training length T ("20ep", "30000it").
      warmup: linear warm-up over this many steps, from lr/warmup at step 0 up to lr ("0it" for none).
      milestones: comma-separated points where the rate is multiplied by ``gamma`` ("80ep,120ep").
      gamma: the learning-rate factor at each milestone.
      data_seed: seeds data order and augmentation, independently of the model seed (the binaries load
        the data with it; a library call uses the Datasets' own data_seed).
    """

    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    clipnorm: float = 0.0
    steps: str = "10ep"
    warmup: str = "0it"
    milestones: str = ""
    gamma: float = 0.1
    data_seed: int = 0

    def validate(self, steps_per_epoch=None):
        """Raises ValueError naming the first field that cannot work.

        With ``steps_per_epoch`` (known once the data is loaded), also checks the schedule against the
        training length T: at least one step, the warm-up and every milestone within training.
        """
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}.")
        if self.lr <= 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}.")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"--momentum must be in [0, 1), got {self.momentum}.")
        if self.nesterov and self.optimizer != "sgd":
            raise ValueError(f"--nesterov applies to --optimizer=sgd only (got {self.optimizer}); pass --nonesterov.")
        if self.weight_decay < 0 or self.clipnorm < 0:
            raise ValueError("--weight_decay and --clipnorm must be >= 0.")
        if self.gamma < 0:
            raise ValueError(f"--gamma must be >= 0 (the factor applied at each milestone), got {self.gamma}.")
        defaults = {field.name: field.default for field in dataclasses.fields(self)}
        if self.gamma != defaults["gamma"] and not self.milestones.strip():
            raise ValueError(f"--gamma={self.gamma} applies at --milestones, which are empty: it would be ignored.")
        if self.momentum != defaults["momentum"] and self.optimizer in ("adam", "adamw"):
            raise ValueError(f"--momentum is used by sgd and rmsprop only; --optimizer={self.optimizer} would ignore it.")
        checks = {"steps": lambda: durations.to_steps(self.steps, 1),  # T itself cannot be a fraction of T
                  "warmup": lambda: durations.to_steps(self.warmup, 1, 1),
                  "milestones": lambda: durations.to_step_list(self.milestones, 1, 1)}
        for name, check in checks.items():
            try:
                check()
            except ValueError as error:
                raise ValueError(f"--{name}: {error}") from None
        if steps_per_epoch is not None:
            self._validate_schedule(steps_per_epoch)

    def _validate_schedule(self, steps_per_epoch):
        total = durations.to_steps(self.steps, steps_per_epoch)
        if total < 1:
            raise ValueError(f"--steps={self.steps!r} is {total} iterations (an epoch is {steps_per_epoch}); "
                             "training needs at least one.")
        warmup = durations.to_steps(self.warmup, steps_per_epoch, total)
        if warmup > total:
            raise ValueError(f"--warmup={self.warmup!r} ends at step {warmup}, after the end of training "
                             f"(--steps={self.steps!r} is {total} steps).")
        late = [m for m in durations.to_step_list(self.milestones, steps_per_epoch, total) if m >= total]
        if late:
            raise ValueError(f"--milestones={self.milestones!r}: step(s) {late} come at or after the end of training "
                             f"(--steps={self.steps!r} is {total} steps), where they never apply.")
