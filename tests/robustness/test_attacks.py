"""FGSM and PGD: sanity properties that fail on a broken attack, tickets of every kind, gradient masking,
and a cross-check against the Adversarial Robustness Toolbox (ART)."""

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery import models
from keras_lottery.blocks.discovery import find_blocks
from keras_lottery.blocks.rewrite import remove
from keras_lottery.robustness import attacks

EPSILONS = (0.0, 0.05, 0.1, 0.2, 0.4)
FGSM = attacks.AttackSettings(kind="fgsm")
PGD = attacks.AttackSettings(kind="pgd", steps=10)


def _accuracy(model, datasets, pixels, labels):
    predicted = np.argmax(model.predict(datasets.test(), verbose=0), axis=-1)
    return float((predicted == labels).mean())


def test_sanity_eps0_monotone_pgd_below_fgsm(trained):
    model, datasets, pixels, labels = trained
    norm = datasets.normalization
    attacker = attacks.Attacker(model, norm)  # one compiled function serves both attacks
    fgsm = {e: float(attacker.robust(pixels, labels, e, FGSM).mean()) for e in EPSILONS}
    pgd = attacks.accuracy_under_attack(model, pixels, labels, norm, EPSILONS, PGD)  # the public entry point
    clean = _accuracy(model, datasets, pixels, labels)  # Keras' own evaluation path
    assert clean > 0.6
    assert fgsm[0.0] == pytest.approx(clean) and pgd[0.0] == pytest.approx(clean)
    for curve in (fgsm, pgd):
        values = [curve[e] for e in EPSILONS]
        assert all(b <= a + 0.02 for a, b in zip(values, values[1:])), curve
        assert values[-1] < clean - 0.5, curve
    assert all(pgd[e] <= fgsm[e] + 1e-9 for e in EPSILONS), (pgd, fgsm)
    assert attacks.gradient_masking(model, pixels, labels, norm, fgsm, pgd) == []


def test_adversarial_images_stay_in_the_ball_and_the_valid_range(trained):
    model, datasets, pixels, labels = trained
    attacker = attacks.Attacker(model, datasets.normalization)
    for settings in (FGSM, PGD):
        adversarial = attacker.perturb(pixels, labels, 0.1, settings)
        assert np.abs(adversarial - pixels).max() <= 0.1 + 1e-6
        assert adversarial.min() >= 0.0 and adversarial.max() <= 1.0


def test_a_gradient_masking_layer_is_flagged(trained):
    model, datasets, pixels, labels = trained
    inputs = keras.Input(model.input_shape[1:])
    rounded = keras.layers.Lambda(lambda x: keras.ops.round(x * 4.0) / 4.0)(inputs)  # zero gradient everywhere
    masked = keras.Model(inputs, model(rounded))
    found = attacks.gradient_masking(masked, pixels, labels, datasets.normalization)
    assert any("zero input gradient" in f for f in found), found


def test_masked_stripped_and_layer_tickets(trained):
    model, datasets, pixels, labels = trained
    norm = datasets.normalization
    masked = kl.mask(model)
    kl.prune(masked, kl.LayerwiseMagnitude(0.5))
    stripped = kl.strip(masked)
    # the attack follows the input gradient: the masked model's equals the stripped model's, not the dense one's
    on_masked = attacks.Attacker(masked, norm).gradients(pixels, labels)
    np.testing.assert_allclose(on_masked, attacks.Attacker(stripped, norm).gradients(pixels, labels), atol=1e-6)
    dense = attacks.Attacker(model, norm).gradients(pixels, labels)
    assert np.mean(np.sign(on_masked) != np.sign(dense)) > 0.05
    assert attacks.accuracy_under_attack(masked, pixels, labels, norm, (0.0, 0.2), FGSM)[0.2] < 0.5
    # a layer ticket: a ResNet with one residual block removed
    resnet = models.get("resnet8", (8, 8, 1), 4, seed=0)
    ticket = remove(resnet, [find_blocks(resnet, warn=False).removable[0].name])
    curve = attacks.accuracy_under_attack(ticket, pixels, labels, norm, (0.0, 0.2), FGSM)
    assert set(curve) == {0.0, 0.2}


def test_bad_settings():
    with pytest.raises(ValueError, match="each in \\[0, 1\\], got -0.1"):
        attacks.check_epsilons([0.1, -0.1])
    with pytest.raises(ValueError, match="Unknown attack 'cw'"):
        attacks.AttackSettings(kind="cw").validate()
    with pytest.raises(ValueError, match="at least one step"):
        attacks.AttackSettings(steps=0).validate()


def test_matches_art_within_one_point(trained):
    """ART's FGSM and PGD (no random start, same step) on the same model, preprocessing and clip range."""
    import art.attacks.evasion as art_attacks  # the test extra installs ART: a missing one fails, never skips
    import art.estimators.classification as art_classifier
    import tensorflow as tf

    model, datasets, pixels, labels = trained
    _, mean, std = datasets.normalization
    classifier = art_classifier.TensorFlowV2Classifier(
        model=model, nb_classes=4, input_shape=pixels.shape[1:],
        loss_object=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), clip_values=(0.0, 1.0),
        preprocessing=(mean, std))
    ours = attacks.Attacker(model, datasets.normalization)
    pgd = attacks.AttackSettings(kind="pgd", steps=10, random_start=False)
    for epsilon in (0.1,):
        references = {
            "fgsm": art_attacks.FastGradientMethod(classifier, norm=np.inf, eps=epsilon, batch_size=128),
            "pgd": art_attacks.ProjectedGradientDescent(classifier, norm=np.inf, eps=epsilon, eps_step=epsilon / 4,
                                                        max_iter=10, num_random_init=0, batch_size=128, verbose=False),
        }
        for name, settings in (("fgsm", FGSM), ("pgd", pgd)):
            theirs = references[name].generate(pixels, y=np.eye(4)[labels])
            their_accuracy = float((ours.predict(theirs) == labels).mean())
            our_accuracy = float(ours.robust(pixels, labels, epsilon, settings).mean())
            assert abs(our_accuracy - their_accuracy) <= 0.01, (name, epsilon, our_accuracy, their_accuracy)
