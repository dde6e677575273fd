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
      weight_decay: decoupled weight decay (Keras' optimizer ``weight_decay``), 0 for none.
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

    def validate(self):
        """Raises ValueError naming the first field that cannot work."""
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}.")
        if self.lr <= 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}.")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"--momentum must be in [0, 1), got {self.momentum}.")
        if self.weight_decay < 0 or self.clipnorm < 0:
            raise ValueError("--weight_decay and --clipnorm must be >= 0.")
        for name in ("steps", "warmup"):
            durations.to_steps(getattr(self, name), steps_per_epoch=1, total_steps=1)
        durations.to_step_list(self.milestones, steps_per_epoch=1, total_steps=1)
