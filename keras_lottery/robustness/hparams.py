"""The robustness evaluation's settings, as a dataclass that becomes the binary's flags."""

import dataclasses
import os

from keras_lottery.robustness import attacks, corruptions


def _split(text):
    return [item.strip() for item in str(text).split(",") if item.strip()]


def split_paths(text):
    """Comma-separated paths, where a path may itself contain commas: at each position the longest run
    of comma-joined pieces that exists is one path (a piece that starts no existing path stands alone)."""
    pieces = [p.strip() for p in str(text).split(",")]
    out, start = [], 0
    while start < len(pieces):
        end = next((j for j in range(len(pieces), start, -1) if os.path.exists(",".join(pieces[start:j]))), start + 1)
        path = ",".join(pieces[start:end])
        if path:
            out.append(path)
        start = end
    return out


@dataclasses.dataclass(frozen=True)
class RobustnessHparams:
    """What a robustness evaluation measures, on which models.

    Attributes:
      runs: comma-separated: one layer-lottery run directory, IMP run directories (one per replicate)
        or .keras files (the first is the reference); commas inside existing paths are kept.
      levels: IMP levels evaluated besides the dense level 0 (comma-separated; empty: every level).
      corruptions: comma-separated corruption names, or all (the 15 of CIFAR-10-C and the extra ones
        that apply), standard (the 15), none.
      severities: comma-separated corruption severities, each 1..5.
      shifted: a second test set of the same classes: a TFDS name (cifar10_1,
        cifar10_corrupted/fog_3) or a directory of t10k IDX files or a .npz; empty for none.
      epsilons: comma-separated L-infinity budgets in pixel units (images in [0, 1]).
      attacks: comma-separated attacks: fgsm, pgd; empty for none.
      attack_subset: attack only the first N test images (0: every evaluated image; --test_subset, a
        data flag, sets how many are evaluated).
      pgd_steps: PGD iterations.
      pgd_step_size: PGD step as a fraction of epsilon (0: 2.5 / pgd_steps, Madry et al.).
      pgd_restarts: PGD random restarts (an image resists only if it resists all).
      random_start: PGD starts from a random point of the epsilon ball.
      seed: seeds the corruptions (generated once per test set and seed) and PGD's random starts.
    """

    runs: str = ""
    levels: str = ""
    corruptions: str = "all"
    severities: str = "1,2,3,4,5"
    shifted: str = ""
    epsilons: str = "0,0.01,0.02,0.05,0.1"
    attacks: str = "fgsm,pgd"
    attack_subset: int = 0
    pgd_steps: int = 10
    pgd_step_size: float = 0.0
    pgd_restarts: int = 1
    random_start: bool = True
    seed: int = 0

    @property
    def run_list(self):
        """``runs`` as paths. Run directories' names hold commas (``levels=1,rate=0.5``), so a comma
        separates two paths only where the text before it is not part of a longer existing path."""
        return split_paths(self.runs)

    @property
    def level_list(self):
        return [int(level) for level in _split(self.levels)]

    @property
    def severity_list(self):
        return [int(s) for s in _split(self.severities)]

    @property
    def epsilon_list(self):
        return attacks.check_epsilons(_split(self.epsilons))

    def corruption_names(self, channels=3):
        """The corruptions to evaluate for images of ``channels`` channels."""
        if self.corruptions == "none":
            return []
        if self.corruptions in ("all", "standard"):
            return corruptions.names(channels, extra=self.corruptions == "all")
        return _split(self.corruptions)

    def attack_settings(self):
        """One ``attacks.AttackSettings`` per attack."""
        return [attacks.AttackSettings(kind=kind, steps=self.pgd_steps, step_size=self.pgd_step_size or None,
                                       random_start=self.random_start, restarts=self.pgd_restarts, seed=self.seed)
                for kind in _split(self.attacks)]

    def validate(self):
        """Raises ValueError naming the first setting that cannot work (before any model is loaded)."""
        if not self.run_list:
            raise ValueError("--runs is empty: name a layer-lottery run directory, IMP run directories or .keras files.")
        try:
            self.level_list
        except ValueError:
            raise ValueError(f"--levels must be comma-separated integers, got {self.levels!r}.") from None
        for name in self.corruption_names():
            corruptions.check(name)
        try:
            severities = self.severity_list
        except ValueError:
            raise ValueError(f"--severities must be comma-separated integers 1..5, got {self.severities!r}.") from None
        if not severities:
            raise ValueError("--severities is empty.")
        for severity in severities:
            corruptions.check(corruptions.CORRUPTIONS[0], severity)
        try:
            epsilons = self.epsilon_list
        except ValueError as error:
            if "pixel units" in str(error):
                raise ValueError(f"--epsilons: {error}") from None
            raise ValueError(f"--epsilons must be comma-separated numbers, got {self.epsilons!r}.") from None
        for settings in self.attack_settings():
            settings.validate()
        if self.attack_settings() and not epsilons:
            raise ValueError("--epsilons is empty but --attacks asks for attacks.")
        if self.attack_subset < 0:
            raise ValueError("--attack_subset must be >= 0 (0 = all).")
