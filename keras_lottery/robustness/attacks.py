"""Adversarial examples: FGSM and PGD under an L-infinity budget, batched and compiled with ``tf.function``.

Attacks work in pixel space, ``images / scale`` in [0, 1] (``Datasets.normalization``), so epsilon
means the same for every model of a dataset (0.1 = 25.5 grey levels of 255), and the adversarial
images are clipped to that valid range. The model is called on ``(pixels - mean) / std``, its own
input scale, inside the differentiated function. Any Keras model that outputs logits works: masked
models (``kl.mask``), stripped ones, layer tickets (blocks removed) and filter tickets alike, since
the attack only needs the gradient of the loss with respect to the input.

* FGSM (Goodfellow et al.): one step of size epsilon along the sign of the input gradient.
* PGD (Madry et al.): ``steps`` steps of size ``step_size`` (a fraction of epsilon; Madry's
  2.5 / steps by default), each projected back onto the epsilon ball and the valid range, from a
  random start in the ball when ``random_start``; with ``restarts`` > 1 an example counts as robust
  only if every restart fails.

``gradient_masking(...)`` flags results that suggest the gradients lie (Athalye et al.): zero or
non-finite input gradients, or an iterative attack that does worse than the single step.
"""

import dataclasses

import numpy as np
import tensorflow as tf

KINDS = ("fgsm", "pgd")


@dataclasses.dataclass(frozen=True)
class AttackSettings:
    """One L-infinity attack.

    Attributes:
      kind: fgsm or pgd.
      steps: PGD's iterations.
      step_size: PGD's step as a fraction of epsilon (None: 2.5 / steps, Madry et al.'s choice).
      random_start: PGD starts from a uniform point of the epsilon ball.
      restarts: PGD's random restarts (an example resists only if it resists all).
      seed: seeds the random starts.
    """

    kind: str = "pgd"
    steps: int = 10
    step_size: float = None
    random_start: bool = True
    restarts: int = 1
    seed: int = 0

    def validate(self):
        """Raises ValueError for settings that cannot work."""
        if self.kind not in KINDS:
            raise ValueError(f"Unknown attack {self.kind!r}; known: {', '.join(KINDS)}.")
        if self.steps < 1:
            raise ValueError(f"PGD needs at least one step, got steps={self.steps}.")
        if self.step_size is not None and self.step_size <= 0:
            raise ValueError(f"The PGD step size (a fraction of epsilon) must be > 0, got {self.step_size}.")
        if self.restarts < 1:
            raise ValueError(f"PGD needs at least one restart, got restarts={self.restarts}.")

    @property
    def label(self):
        """``fgsm`` or ``pgd10`` (``pgd10x3`` with 3 restarts)."""
        if self.kind == "fgsm":
            return "fgsm"
        return f"pgd{self.steps}" + (f"x{self.restarts}" if self.restarts > 1 else "")


def check_epsilons(epsilons):
    """Raises ValueError unless every epsilon is a number in [0, 1] (pixel units); returns them sorted."""
    values = sorted(float(e) for e in epsilons)
    bad = [e for e in values if not 0.0 <= e <= 1.0 or e != e]
    if bad:
        raise ValueError(f"Epsilons are L-infinity budgets in pixel units (images in [0, 1]): each in [0, 1], got "
                         f"{', '.join(map(str, bad))}.")
    return values


class Attacker:
    """The compiled attack functions for one model and one input normalization.

    Args:
      model: a Keras model mapping normalized images to logits.
      normalization: ``(scale, mean, std)`` as ``Datasets.normalization`` gives it (the model's input
        is ``(pixels - mean) / std``; ``scale`` is not needed here, as attacks take pixels in [0, 1]).
    """

    def __init__(self, model, normalization):
        _, mean, std = normalization
        self.model = model
        self._mean = tf.constant(np.asarray(mean, np.float32))
        self._std = tf.constant(np.asarray(std, np.float32))
        self._gradient = tf.function(self._loss_gradient, reduce_retracing=True)
        self._predict = tf.function(self._labels, reduce_retracing=True)
        self._classify = tf.function(lambda images: self._labels(tf.cast(images, tf.float32) / 255.0),
                                     reduce_retracing=True)
        self._pgd = tf.function(self._pgd_batch, reduce_retracing=True)

    def _logits(self, pixels):
        logits = self.model((pixels - self._mean) / self._std, training=False)
        return tf.cast(logits, tf.float32)

    def _labels(self, pixels):
        return tf.argmax(self._logits(pixels), axis=-1, output_type=tf.int64)

    def _loss_gradient(self, pixels, labels):
        with tf.GradientTape() as tape:
            tape.watch(pixels)
            loss = tf.keras.losses.sparse_categorical_crossentropy(labels, self._logits(pixels), from_logits=True)
        # a model that cuts the input off the loss (a non-differentiable op) has zero gradient, not None
        return tape.gradient(loss, pixels, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    def _pgd_batch(self, pixels, labels, epsilon, step, steps, start_seed, random_start):
        low, high = tf.maximum(pixels - epsilon, 0.0), tf.minimum(pixels + epsilon, 1.0)
        noise = tf.random.stateless_uniform(tf.shape(pixels), start_seed, -1.0, 1.0) * epsilon
        adversarial = tf.clip_by_value(pixels + tf.where(random_start, noise, tf.zeros_like(noise)), low, high)
        for _ in tf.range(steps):
            gradient = self._loss_gradient(adversarial, labels)
            adversarial = tf.clip_by_value(adversarial + step * tf.sign(gradient), low, high)
        return adversarial

    def predict(self, pixels, batch_size=256):
        """Predicted labels of ``pixels`` (float32 in [0, 1], NHWC)."""
        return np.concatenate([self._predict(tf.constant(pixels[i:i + batch_size], tf.float32)).numpy()
                               for i in range(0, len(pixels), batch_size)])

    def classify(self, images, batch_size=256):
        """Predicted labels of uint8 ``images`` (NHWC, pixels = images / 255), converted to float inside
        the compiled function (no float copy of the whole set on the host)."""
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise ValueError(f"Attacker.classify takes uint8 images, got {images.dtype}; use predict for pixels.")
        return np.concatenate([self._classify(tf.constant(images[i:i + batch_size])).numpy()
                               for i in range(0, len(images), batch_size)])

    def gradients(self, pixels, labels, batch_size=256):
        """The input gradients of the cross-entropy at ``pixels``."""
        return np.concatenate([self._gradient(tf.constant(pixels[i:i + batch_size], tf.float32),
                                              tf.constant(labels[i:i + batch_size], tf.int64)).numpy()
                               for i in range(0, len(pixels), batch_size)])

    def perturb(self, pixels, labels, epsilon, settings, restart=0, batch_size=256):
        """Adversarial versions of ``pixels`` within ``epsilon`` (L-infinity), in [0, 1]."""
        out = []
        fgsm = settings.kind == "fgsm"
        steps = 1 if fgsm else settings.steps
        step = epsilon if fgsm else epsilon * (settings.step_size or 2.5 / settings.steps)
        random_start = (not fgsm) and settings.random_start
        for index, i in enumerate(range(0, len(pixels), batch_size)):
            seed = tf.constant([settings.seed * 1_000_003 + restart, index], tf.int64)
            out.append(self._pgd(tf.constant(pixels[i:i + batch_size], tf.float32),
                                 tf.constant(labels[i:i + batch_size], tf.int64), tf.constant(epsilon, tf.float32),
                                 tf.constant(step, tf.float32), tf.constant(steps), seed,
                                 tf.constant(random_start)).numpy())
        return np.concatenate(out)

    def robust(self, pixels, labels, epsilon, settings, batch_size=256):
        """Per example: True when the model classifies it correctly under the attack (every restart)."""
        correct = self.predict(pixels, batch_size) == labels
        if epsilon == 0:
            return correct
        for restart in range(1 if settings.kind == "fgsm" else settings.restarts):
            adversarial = self.perturb(pixels, labels, epsilon, settings, restart, batch_size)
            correct &= self.predict(adversarial, batch_size) == labels
        return correct


def accuracy_under_attack(model, pixels, labels, normalization, epsilons, settings, batch_size=256):
    """``{epsilon: accuracy}`` of ``model`` on ``pixels`` (float in [0, 1]) under the attack ``settings``."""
    settings.validate()
    attacker = Attacker(model, normalization)
    labels = np.asarray(labels, np.int64)
    return {e: float(attacker.robust(pixels, labels, e, settings, batch_size).mean()) for e in check_epsilons(epsilons)}


def gradient_masking(model, pixels, labels, normalization, fgsm=None, pgd=None, tolerance=0.01, batch_size=256):
    """Signs that gradient-based attacks are misled (Athalye et al., 2018), as a list of sentences.

    Checked: input gradients that are not finite, or zero for more than half of the examples (a
    gradient-blocking layer); and, given ``fgsm`` and ``pgd`` as ``{epsilon: accuracy}``, PGD
    accuracy above FGSM accuracy by more than ``tolerance`` at any epsilon (an iterative attack must
    do at least as well as its first step). An empty list means no sign was found, not that the
    model is robust.
    """
    gradient = Attacker(model, normalization).gradients(pixels, np.asarray(labels, np.int64), batch_size)
    found = []
    if not np.all(np.isfinite(gradient)):
        found.append(f"non-finite input gradients in {int((~np.isfinite(gradient)).any(axis=(1, 2, 3)).sum())} "
                     f"of {len(gradient)} examples")
    zero = float((np.abs(gradient).reshape(len(gradient), -1).max(axis=1) == 0).mean())
    if zero > 0.5:
        found.append(f"zero input gradient for {100 * zero:.0f}% of the examples")
    for epsilon in sorted(set(fgsm or {}) & set(pgd or {})):
        if pgd[epsilon] > fgsm[epsilon] + tolerance:
            found.append(f"PGD accuracy {100 * pgd[epsilon]:.1f}% above FGSM's {100 * fgsm[epsilon]:.1f}% at "
                         f"epsilon {epsilon:g}")
    return found
