"""find_groups: the channel rules on a tiny graph, on the zoo, and its one-line errors."""

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.filters import find_groups, remove_filters


def test_tiny_graph_groups(tiny_graph):
    groups = find_groups(tiny_graph).by_name()
    assert set(groups) == {"c1", "c3", "c4", "c5", "fc1", "out"}
    c1 = groups["c1"]
    assert c1.size == 6 and c1.sources == ("c1", "c2") and c1.prunable  # Add ties c2 to c1
    assert {"bn1", "dw", "bn2", "bn3", "res_add"} <= set(c1.members)  # depthwise: input channels = output channels
    assert set(c1.sinks) == {"dw", "c2", "c3", "c4"} - {"dw"}
    assert groups["c3"].size == 4 and groups["c4"].size == 5
    cat_offsets = {s.layer: s.offset for s in groups["c4"].slices if s.role == "sink"}
    assert cat_offsets == {"c5": 4}  # c4's channels come after c3's in the concatenation
    dense_rows = [s for s in groups["c5"].slices if s.layer == "fc1"]
    assert [(s.repeat, s.stride, s.axis) for s in dense_rows] == [(4, 7, 0)]
    assert list(dense_rows[0].indices([2])) == [2, 9, 16, 23]
    assert groups["fc1"].sources == ("fc1", "fc2")  # the x + y operation ties them
    assert not groups["out"].prunable and "model output" in groups["out"].reason


def test_per_channel_costs_are_what_removing_one_channel_frees(tiny_graph):
    dense_params, dense_flops = kl.metrics.params(tiny_graph), kl.metrics.flops(tiny_graph)
    for group in find_groups(tiny_graph).prunable:
        slim = remove_filters(tiny_graph, {group.name: [0]})
        assert dense_params - kl.metrics.params(slim) == group.params_per_channel, group.name
        freed = dense_flops - kl.metrics.flops(slim)
        if group.name == "c1":  # c2 reads and writes the group: one input x output product is counted twice
            assert 0 < group.flops_per_channel - freed <= 2 * 64
        else:
            assert group.flops_per_channel == pytest.approx(freed), group.name


def test_unknown_layers_freeze_their_channels():
    x = keras.Input((4, 4, 2))
    y = keras.layers.Conv2D(3, 1, name="a")(x)
    y = keras.layers.LayerNormalization(name="ln")(y)  # mixes channels: removing one changes the others
    y = keras.layers.Conv2D(4, 1, name="b")(y)
    out = keras.layers.Dense(2, name="out")(keras.layers.GlobalAveragePooling2D()(y))
    groups = find_groups(keras.Model(x, out)).by_name()
    assert not groups["a"].prunable and "ln (LayerNormalization)" in groups["a"].reason
    assert groups["b"].prunable


def test_zoo_groups():
    resnet = kl.models.resnet_cifar(20, input_shape=(16, 16, 3), classes=10)
    groups = find_groups(resnet).by_name()
    # a residual stage is one group: the stem (or the projection) and each block's second convolution
    assert groups["stem_conv"].sources == ("stem_conv", "stage1_block1_conv2", "stage1_block2_conv2",
                                           "stage1_block3_conv2")
    assert groups["stage2_block1_shortcut_conv"].filters_per_channel == 4
    assert len(find_groups(resnet).prunable) == 12
    conv4 = find_groups(kl.models.get("conv4", (16, 16, 3), 10))
    assert [g.size for g in conv4.prunable] == [64, 64, 128, 128, 256, 256]
    vgg = find_groups(kl.models.get("vgg16", (32, 32, 3), 10))
    assert len(vgg.prunable) == 13 and vgg.prunable[-1].sinks == ("predictions",)  # 13 convolutions


def test_sequential_and_subclassed_models_are_refused(mlp):
    with pytest.raises(TypeError, match="Sequential model"):
        find_groups(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = keras.layers.Dense(2)

        def call(self, x):
            return self.d(x)

    with pytest.raises(TypeError, match="subclassed"):
        find_groups(Sub())
    with pytest.raises(TypeError, match="functional keras.Model"):
        find_groups(np.zeros(3))
