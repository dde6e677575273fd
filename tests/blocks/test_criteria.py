import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_lottery as kl
from keras_lottery.blocks import criteria


def _scaled_copy(model, block, factor):
    """A copy of ``model`` whose block's branch weights are multiplied by ``factor``."""
    copy = kl.blocks.remove(model, [])
    for layer_name in block.branch_layers:
        for w in copy.get_layer(layer_name).trainable_weights:
            w.assign(w.numpy() * factor)
    return copy


def test_registry_lists_builtins_and_user_criteria(resnet14):
    assert {"snip", "grasp", "synflow", "random", "l1", "hrank", "expectabs", "kl", "cka", "pls"} <= set(criteria.names())

    def depth_rank(model, blocks, data, *, loss, seed):
        return {b.name: float(-i) for i, b in enumerate(blocks)}

    criteria.register("depth_rank", depth_rank)
    try:
        with pytest.raises(ValueError, match="already registered"):
            criteria.register("depth_rank", depth_rank)
        scores = kl.blocks.score(resnet14, criterion="depth_rank")
        assert kl.blocks.lowest(scores, 1) == ["stage3_block2_add"]
    finally:
        criteria.unregister("depth_rank")
    assert "depth_rank" not in criteria.names()
    with pytest.raises(ValueError, match="Unknown block criterion 'nope'; registered: .*grasp"):
        kl.blocks.score(resnet14, criterion="nope")
    with pytest.raises(ValueError, match="one score per block"):
        kl.blocks.score(resnet14, criterion=lambda model, blocks, data, **kw: {"x": 1.0})
    with pytest.raises(ValueError, match="non-finite"):
        kl.blocks.score(resnet14, criterion=lambda model, blocks, data, **kw: {b.name: np.nan for b in blocks})


def test_lowest_is_deterministic():
    scores = {"a": 1.0, "b": 0.5, "c": 0.5, "d": -2.0}
    assert kl.blocks.lowest(scores, 3) == ["d", "b", "c"]
    assert kl.blocks.lowest(scores, 0) == []
    with pytest.raises(ValueError, match="between 0 and the number of scored blocks \\(4\\), got 5"):
        kl.blocks.lowest(scores, 5)


def _smooth_resnet():
    """A residual net with tanh and batch norm: smooth, so finite differences are trustworthy."""
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    for i in range(2):
        y = keras.layers.Conv2D(4, 3, padding="same", name=f"b{i}_conv")(x)
        y = keras.layers.BatchNormalization(name=f"b{i}_bn")(y)
        y = keras.layers.Activation("tanh", name=f"b{i}_tanh")(y)
        x = keras.layers.Add(name=f"b{i}_add")([x, y])
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="predictions")(x))


def test_exact_batch_norm_twin_matches_keras_batch_norm(resnet14, images16):
    x, _ = images16
    exact = criteria.twin(resnet14, exact_batch_norm=True)
    for training in (False, True):
        np.testing.assert_allclose(exact(x, training=training), resnet14(x, training=training), rtol=1e-4, atol=1e-4)


def test_twin_runs_grouped_convolutions_as_depthwise_with_the_same_function():
    """Conv2D(groups=channels), with depth multiplier 1 or 2, becomes DepthwiseGroupedConv2D in the twin:
    same weights, outputs and first and second derivatives; a grouped conv with 2 channels per group
    keeps the parent's path."""
    inputs = keras.Input((8, 8, 4))
    h = keras.layers.Conv2D(4, 3, padding="same", groups=4, name="depthwise")(inputs)
    h = keras.layers.Conv2D(8, 3, strides=2, padding="same", groups=4, name="multiplier2")(h)
    h = keras.layers.Conv2D(8, 1, groups=4, name="grouped")(h)
    outputs = keras.layers.Dense(3, name="predictions")(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 4)).astype("float32")
    y = np.array([0, 1, 2, 0])
    copy = criteria.twin(model)
    assert [type(copy.get_layer(n)).__name__ for n in ("depthwise", "multiplier2", "grouped")] == \
        ["DepthwiseGroupedConv2D"] * 3
    np.testing.assert_allclose(copy(x), model(x), rtol=1e-5, atol=1e-6)
    loss = criteria._as_loss(None)
    g = criteria.gradients(model, [(x, y)], loss)
    for a, b in zip(criteria.gradients(copy, [(x, y)], loss), g):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    for a, b in zip(criteria.hessian_vector_product(copy, [(x, y)], loss, g),
                    criteria.hessian_vector_product(model, [(x, y)], loss, g)):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-6)
    # one batch: g and H g from one graph equal the two passes
    g1, hg1 = criteria.gradient_and_hessian_product(model, [(x, y)], loss)
    for a, b in zip(g1, g):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    for a, b in zip(hg1, criteria.hessian_vector_product(model, [(x, y)], loss, g)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


def test_grasp_block_score_is_first_order_change_of_gradient_norm():
    """sum(w * Hg) over a block = d/d(eps) of ||g||^2 / 2 when the block's weights are scaled by (1 + eps)."""
    model = _smooth_resnet()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 6, 6, 3)).astype("float32"), rng.integers(0, 3, size=16)
    scores = kl.blocks.score(model, (x, y), criterion="grasp")
    loss = criteria._as_loss(None)

    def grad_norm2(m):
        return sum(float(np.sum(gi.astype(np.float64) ** 2)) for gi in criteria.gradients(m, [(x, y)], loss))

    for block in kl.blocks.find_blocks(model):
        eps = 1e-2
        estimate = (grad_norm2(_scaled_copy(model, block, 1 + eps))
                    - grad_norm2(_scaled_copy(model, block, 1 - eps))) / (4 * eps)
        assert scores[block.name] == pytest.approx(estimate, rel=0.05)
    # plain autodiff through Keras batch norm drops second-order terms: the twin is needed
    g = criteria.gradients(model, [(x, y)], loss)
    plain = criteria.hessian_vector_product(model, [(x, y)], loss, g)
    exact = criteria.hessian_vector_product(criteria.twin(model, exact_batch_norm=True), [(x, y)], loss, g)
    assert not np.allclose(plain[0], exact[0], rtol=1e-2)


def test_snip_sums_absolute_saliencies(resnet14, images16):
    x, y = images16
    blocks = kl.blocks.find_blocks(resnet14).removable
    total = kl.blocks.score(resnet14, (x, y), criterion="snip")
    mean = kl.blocks.score(resnet14, (x, y), criterion="snip", aggregate="mean")
    # explicitly: sum |w * dL/dw| over the branch's trainable weights, batch norm in training mode, on a
    # copy (its batch-norm statistics move; the shared model's must not)
    copy = keras.models.clone_model(resnet14)
    copy.set_weights(resnet14.get_weights())
    weights = {b.name: [w for name in b.branch_layers for w in copy.get_layer(name).trainable_weights] for b in blocks}
    every = [w for b in blocks for w in weights[b.name]]
    with tf.GradientTape() as tape:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, copy(x, training=True))
    grads = dict(zip(map(id, every), tape.gradient(loss, every)))
    for block in blocks:
        expected = sum(float(np.sum(np.abs(w.numpy().astype(np.float64) * grads[id(w)].numpy())))
                       for w in weights[block.name])
        assert total[block.name] == pytest.approx(expected, rel=1e-4)
        n = sum(int(np.prod(w.shape)) for w in weights[block.name])
        assert total[block.name] == pytest.approx(mean[block.name] * n, rel=1e-6)
    with pytest.raises(ValueError, match="aggregate must be 'sum' or 'mean', got 'max'"):
        kl.blocks.score(resnet14, (x, y), criterion="snip", aggregate="max")


def test_scoring_does_not_change_the_model_and_accepts_datasets(resnet14, images16):
    x, y = images16
    before = [w.numpy().copy() for w in resnet14.weights]
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    from_ds = kl.blocks.score(resnet14, ds.take(1), criterion="snip")
    from_tuple = kl.blocks.score(resnet14, (x[:4], y[:4]), criterion="snip")
    assert from_ds == pytest.approx(from_tuple, rel=1e-5)
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, resnet14.weights))
    with pytest.raises(ValueError, match="needs data"):
        kl.blocks.score(resnet14, None, criterion="grasp")
    with pytest.raises(TypeError, match="\\(x, y\\) pair"):
        kl.blocks.score(resnet14, [x], criterion="snip")


def _positive_resnet():
    """Two residual blocks of bias-free convolutions, no batch norm, in float64.

    With |w| and an all-ones input every activation is positive, so each ReLU passes its input and the
    network output is ``A + B t^2`` when a block's two convolutions are scaled by ``t``: the SynFlow
    score ``sum(w * dR/dw) = dR/dt`` at ``t = 1`` is ``2 B = 2 (R - R without the block)``.
    """
    layer = dict(dtype="float64")
    inputs = keras.Input((5, 5, 2), dtype="float64")
    x = keras.layers.Conv2D(3, 3, padding="same", use_bias=False, name="stem", **layer)(inputs)
    for i in range(2):
        y = keras.layers.Conv2D(3, 3, padding="same", use_bias=False, activation="relu", name=f"b{i}_conv1",
                                **layer)(x)
        y = keras.layers.Conv2D(3, 3, padding="same", use_bias=False, name=f"b{i}_conv2", **layer)(y)
        x = keras.layers.ReLU(name=f"b{i}_out", **layer)(keras.layers.Add(name=f"b{i}_add", **layer)([x, y]))
    x = keras.layers.GlobalAveragePooling2D(**layer)(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="predictions", **layer)(x))


def test_data_free_criteria(resnet14):
    model = _positive_resnet()
    synflow = kl.blocks.score(model, criterion="synflow")
    assert list(synflow) == ["b0_add", "b1_add"]
    positive = keras.models.clone_model(model)
    positive.set_weights([np.abs(w) for w in model.get_weights()])
    ones = np.ones((1, 5, 5, 2))

    def total(m):
        return float(np.sum(m(ones, training=False)))

    for name, value in synflow.items():
        expected = 2 * (total(positive) - total(kl.blocks.remove(positive, [name])))
        assert expected > 0 and value == pytest.approx(expected, rel=1e-9)
    a, b = (kl.blocks.score(resnet14, criterion="random", seed=s) for s in (0, 0))
    assert a == b and a != kl.blocks.score(resnet14, criterion="random", seed=1)
    assert list(a.values()) == list(np.random.default_rng(0).random(len(a)))


def test_l1_is_biased_to_early_stages():
    """At He initialization wider (later) blocks have larger L1 norms, so L1 removes stage-1 blocks first."""
    model = kl.models.resnet_cifar(20, input_shape=(16, 16, 3), width=8, seed=0)
    lowest = kl.blocks.lowest(kl.blocks.score(model, criterion="l1"), k=3)
    assert sorted(lowest) == ["stage1_block1_add", "stage1_block2_add", "stage1_block3_add"]


def test_activation_criteria(resnet14, images16, zeroed_branch_copy):
    x, y = images16
    silent = "stage2_block2_add"
    model = zeroed_branch_copy(resnet14, [silent])
    hrank = kl.blocks.score(model, (x, y), criterion="hrank")
    expect = kl.blocks.score(model, (x, y), criterion="expectabs")
    assert hrank[silent] == 0.0 and expect[silent] == 0.0
    # an independent probe of each branch output (the block's second batch norm), inference mode
    for block in kl.blocks.find_blocks(model).removable:
        assert block.branch_output == block.name.replace("_add", "_bn2")
        a = keras.Model(model.inputs[0], model.get_layer(block.branch_output).output)(x, training=False).numpy()
        ranks = np.linalg.matrix_rank(a.transpose(0, 3, 1, 2).astype("float64"))  # per example and channel
        assert hrank[block.name] == ranks.mean()
        assert expect[block.name] == pytest.approx(float(np.abs(a.astype("float64")).mean()), rel=1e-6)
        if block.name != silent:
            assert 0 < hrank[block.name] <= a.shape[1] and expect[block.name] > 0


def test_kl_and_cka_match_explicit_removal(resnet14, images16):
    x, y = images16
    name = "stage2_block2_add"
    ticket = kl.blocks.remove(resnet14, [name])
    p = tf.nn.softmax(resnet14(x, training=False)).numpy().astype(np.float64)
    q = tf.nn.softmax(ticket(x, training=False)).numpy().astype(np.float64)
    expected_kl = float(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1)))
    assert kl.blocks.score(resnet14, (x, y), criterion="kl")[name] == pytest.approx(expected_kl, rel=1e-3, abs=1e-7)

    def pooled(model):
        return keras.Model(model.inputs[0], model.get_layer("pool").output)(x, training=False).numpy()

    cka = kl.blocks.score(resnet14, (x, y), criterion="cka")
    assert cka[name] == pytest.approx(1 - criteria.linear_cka(pooled(resnet14), pooled(ticket)), abs=1e-5)
    assert criteria.linear_cka(pooled(resnet14), pooled(resnet14)) == pytest.approx(1.0)


def test_linear_cka_is_the_normalized_hsic():
    # centred, these two columns are orthogonal: no alignment
    assert criteria.linear_cka([[1], [-1], [1], [-1]], [[1], [1], [-1], [-1]]) == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(12, 5))
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    # invariant to an orthogonal transform, isotropic scaling and a shift
    assert criteria.linear_cka(a, 2 * a @ q + 1) == pytest.approx(1.0)
    b = rng.normal(size=(12, 3))
    centring = np.eye(12) - np.ones((12, 12)) / 12

    def hsic(k, l):
        return np.trace(k @ centring @ l @ centring)

    ka, kb = a @ a.T, b @ b.T
    expected = hsic(ka, kb) / np.sqrt(hsic(ka, ka) * hsic(kb, kb))
    assert criteria.linear_cka(a, b) == pytest.approx(expected, rel=1e-10)
    assert 0 < expected < 1


def test_score_rejects_plain_networks():
    vgg = kl.models.lenet_300_100(input_shape=(28, 28, 1), classes=10)
    with pytest.raises(ValueError, match="Nothing to score.*no residual block"):
        kl.blocks.score(vgg, criterion="random")


def _xy(n=8, features=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)).astype("float32"), rng.integers(0, classes, size=n)


def test_criteria_score_operation_node_and_nested_blocks(op_model, nested_model):
    x, y = _xy()
    for model in (op_model, nested_model):
        names = kl.blocks.find_blocks(model).names()
        for criterion in ("grasp", "snip", "synflow", "l1", "random", "kl", "cka"):
            scores = kl.blocks.score(model, (x, y), criterion=criterion)
            assert list(scores) == names and all(np.isfinite(v) for v in scores.values()), criterion
    # a nested block's SNIP score is the sum over its own weights, found through its path
    block = kl.blocks.find_blocks(nested_model)[0]
    grads = criteria.gradients(nested_model, [(x, y)], criteria._as_loss(None))
    by_id = {id(v): g for v, g in zip(nested_model.trainable_variables, grads)}
    expected = sum(float(np.abs(w.numpy() * by_id[id(w)]).sum())
                   for w in kl.blocks.discovery.branch_weights(nested_model, block))
    assert kl.blocks.score(nested_model, (x, y), criterion="snip")[block.name] == pytest.approx(expected, rel=1e-5)
    # kl on a nested block equals the divergence from the explicitly rewritten model
    ticket = kl.blocks.remove(nested_model, [block.name])
    p = tf.nn.softmax(nested_model(x)).numpy().astype(np.float64)
    q = tf.nn.softmax(ticket(x)).numpy().astype(np.float64)
    expected_kl = float(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1)))
    assert kl.blocks.score(nested_model, (x, y), criterion="kl")[block.name] == pytest.approx(expected_kl, rel=1e-4)
    # activation criteria read branch outputs from the outer graph: refused for nested blocks, by name
    assert block.name.startswith("encoder/add")  # x + y operations are auto-named: add, add_1, ...
    with pytest.raises(ValueError, match=f"'{block.name}' lies inside the nested model 'encoder'.*grasp"):
        kl.blocks.score(nested_model, (x, y), criterion="expectabs")
    expect = kl.blocks.score(op_model, (x, y), criterion="expectabs")
    assert list(expect) == kl.blocks.find_blocks(op_model).names() and min(expect.values()) > 0


def _two_outputs():
    inputs = keras.Input((6,), name="x")
    h = keras.layers.Dense(6, activation="tanh", name="fc")(inputs)
    x = inputs + h
    classes = keras.layers.Dense(3, name="classes")(x)
    value = keras.layers.Dense(1, name="value")(x)
    return keras.Model(inputs, [classes, value], name="two_heads")


def test_multi_output_models_need_a_loss_per_output():
    model = _two_outputs()
    x, y = _xy()
    target = np.random.default_rng(1).normal(size=(8, 1)).astype("float32")
    with pytest.raises(ValueError, match="'two_heads' has 2 outputs \\['classes', 'value'\\]: pass loss="):
        kl.blocks.score(model, (x, (y, target)), criterion="grasp")
    with pytest.raises(ValueError, match="has 1 entries; the model has 2 outputs"):
        kl.blocks.score(model, (x, (y, target)), criterion="snip", loss=["mse"])
    assert list(kl.blocks.score(model, criterion="synflow")) == ["add"]  # data-free: no loss needed
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    as_list = kl.blocks.score(model, (x, (y, target)), criterion="snip", loss=[ce, "mse"])
    as_dict = kl.blocks.score(model, (x, (y, target)), criterion="snip", loss={"value": "mse", "classes": ce})
    assert as_list == as_dict
    # the summed loss: SNIP of the sum equals |w * (dL1/dw + dL2/dw)| summed over the block's weights
    w = model.get_layer("fc").trainable_weights
    with tf.GradientTape() as tape:
        out = model(x)
        total = ce(y, out[0]) + keras.losses.MeanSquaredError()(target, out[1])
    grads = tape.gradient(total, w)
    expected = sum(float(np.abs(v.numpy() * g.numpy()).sum()) for v, g in zip(w, grads))
    assert as_list["add"] == pytest.approx(expected, rel=1e-5)


def test_hessian_product_is_right_through_an_einsum_with_a_size_one_dimension():
    # A multi-query attention's value projection (one key-value head, Gemma's equation). Reverse-over-
    # reverse differentiation, compiled by TensorFlow 2.21's graph optimizer, gets H g wrong here.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 6))
    values = keras.layers.EinsumDense("bsd,kdh->bskh", output_shape=(None, 1, 5), name="value")(inputs)
    hidden = keras.layers.Dense(8, activation="tanh")(keras.layers.Reshape((20,))(values))
    model = keras.Model(inputs, keras.layers.Dense(3)(hidden))
    x = np.random.default_rng(0).normal(size=(6, 4, 6)).astype("float32")
    y = np.array([0, 1, 2, 0, 1, 2])
    loss = criteria._as_loss(None)
    g, hg = criteria.gradient_and_hessian_product(model, [(x, y)], loss)
    # central differences of the gradient along g, in float64
    wide, step = criteria.twin(model, dtype="float64"), 1e-4
    batch = [(x.astype("float64"), y)]
    plus = criteria.gradients(wide, batch, loss, offset=[step * v for v in g])
    minus = criteria.gradients(wide, batch, loss, offset=[-step * v for v in g])
    for product, p, m in zip(hg, plus, minus):
        np.testing.assert_allclose(product, (p - m) / (2 * step), rtol=1e-3, atol=1e-5)
    for a, b in zip(criteria.hessian_vector_product(model, [(x, y)], loss, g), hg):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
