"""Masks, both pruning APIs, training, stripping, saving and export on tiny KerasHub models (issue 27)."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_lottery as kl
from keras_lottery import attached, sparsity
from keras_lottery.export import verification



TASKS = {"gpt2_causal_lm", "bert_classifier", "image_classifier"}  # models with a head: fit() with their loss


def _kernels(model):
    """Paths of every rank >= 2 weight the registry covers, found independently of the masks."""
    return sorted(path for path, _ in attached.prunable_paths(model))


def _dead_weights_are_zero(model):
    dead_count = 0
    for layer in kl.masking.masked_layers(model):
        for path, variable, mask in layer.masked_weights():
            dead = keras.ops.convert_to_numpy(mask.value) == 0
            dead_count += int(dead.sum())
            assert not np.any(keras.ops.convert_to_numpy(variable.value)[dead]), path
    assert dead_count > 0


def _fit_one_step(name, model, x, y):
    if name in TASKS:
        model.compile(optimizer=keras.optimizers.Adam(1e-2),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=len(y), epochs=1, verbose=0, callbacks=_callbacks(model))
        return
    # a backbone has no head: one gradient step on the mean of its outputs
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    for callback in _callbacks(model):  # a custom loop sets the pruning wrappers up, as in TFMOT's guide
        callback.set_model(model)
        callback.on_train_begin()
    with tf.GradientTape() as tape:
        loss = sum(keras.ops.mean(t) for t in keras.tree.flatten(model(x, training=True)))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients([(g, v) for g, v in zip(grads, model.trainable_variables) if g is not None])


def _callbacks(model):
    return [sparsity.UpdatePruningStep()] if sparsity.wrapper.pruning_wrappers(model) else []


def test_mask_reaches_every_kernel_and_keeps_the_class(hub_model):
    name, model, x, y = hub_model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # position embeddings made with add_weight stay dense, by name
        masked = kl.mask(model)
    assert type(masked) is type(model) and masked is not model
    assert sorted(kl.Mask.from_model(masked)) == _kernels(model)
    assert len(kl.Mask.from_model(masked)) >= 5  # the attention and MLP kernels inside the blocks
    np.testing.assert_allclose(keras.tree.flatten(masked(x))[0], keras.tree.flatten(model(x))[0], atol=1e-5)
    kl.prune(masked, kl.GlobalMagnitude(0.5))
    assert abs(kl.Mask.from_model(masked).density - 0.5) < 0.01
    _fit_one_step(name, masked, x, y)
    _dead_weights_are_zero(masked)
    stripped = kl.strip(masked)
    assert type(stripped) is type(model) and not kl.masking.masked_layers(stripped)
    np.testing.assert_allclose(keras.tree.flatten(stripped(x))[0], keras.tree.flatten(masked(x))[0], atol=1e-5)
    assert kl.masking.density_report(stripped)["global"] == kl.Mask.from_model(masked).report()["global"]


def test_prune_low_magnitude_prunes_in_place_and_strips_to_the_class(hub_model, tmp_path):
    name, model, x, y = hub_model
    pruned = sparsity.prune_low_magnitude(model, pruning_schedule=sparsity.ConstantSparsity(0.5, 0, frequency=1))
    assert pruned is model  # the user's own model and layer objects, pruned in place
    wrappers = sparsity.wrapper.pruning_wrappers(pruned)
    assert sorted(p for w in wrappers for p in w.weight_paths()) == _kernels(model)
    if name not in TASKS:
        sparsity.wrapper.prune_layers([(w, 0.5) for w in wrappers])
    _fit_one_step(name, pruned, x, y)
    _dead_weights_are_zero(pruned)
    stripped = sparsity.strip_pruning(pruned)
    assert type(stripped) is type(model)
    path = tmp_path / "stripped.keras"
    stripped.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model)
    np.testing.assert_allclose(keras.tree.flatten(loaded(x))[0], keras.tree.flatten(pruned(x))[0], atol=1e-5)
    # a loaded ticket gets its masks back from its zeros
    assert kl.Mask.from_model(kl.mask(loaded, from_zeros=True, unmasked="ignore")) == kl.Mask.from_model(pruned)


def test_pruned_causal_lm_trains_generates_strips_and_serves(causal_lm, tmp_path):
    lm, x, y = causal_lm
    pruned = sparsity.prune_low_magnitude(lm, pruning_schedule=sparsity.ConstantSparsity(0.5, 0, frequency=1))
    pruned.compile(optimizer=keras.optimizers.Adam(1e-2),
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callback = sparsity.UpdatePruningStep()
    pruned.fit(x, y, batch_size=2, epochs=2, verbose=0, callbacks=[callback])
    # the tied token embedding is called twice per step (input and output projection): one step counted
    assert {int(keras.ops.convert_to_numpy(w.pruning_step.value)) for w in callback._wrappers} == {4}
    _dead_weights_are_zero(pruned)
    prompt = {"token_ids": np.array([[1, 2, 3, 0, 0, 0]], "int32"), "padding_mask": np.array([[1, 1, 1, 0, 0, 0]])}
    generated = pruned.generate(prompt, max_length=6, stop_token_ids=None)
    assert generated["token_ids"].shape == (1, 6)
    result = kl.export.for_serving(pruned, tmp_path / "gpt2", require_sparse=True)
    served, diffs = verification.verify(result.path, pruned, x)
    assert set(served.outputs) == {"logits", "probabilities"} and max(diffs.values()) < 1e-4
    assert result.card["density"]["global"]["density"] == pytest.approx(0.5, abs=0.01)
