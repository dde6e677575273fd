import numpy as np
import pytest

from keras_lottery import models


@pytest.mark.parametrize("name,shape", [("lenet_300_100", (28, 28, 1)), ("conv2", (32, 32, 3)),
                                        ("conv4", (16, 16, 1)), ("conv6", (32, 32, 3)),
                                        ("vgg16", (32, 32, 3)), ("resnet20", (28, 28, 1)),
                                        ("vit_2", (28, 28, 1)), ("vit_1", (32, 32, 3))])
def test_every_zoo_model_builds_for_any_shape_and_class_count(name, shape):
    model = models.get(name, shape, classes=7, seed=0)
    assert model.output_shape == (None, 7)
    assert model.input_shape == (None, *shape)
    assert model.get_layer("predictions").activation.__name__ == "linear"  # logits


def test_lenet_has_the_papers_parameter_count():
    # 784*300+300 + 300*100+100 + 100*10+10
    assert models.lenet_300_100().count_params() == 266_610


def test_resnet_depth_gives_three_stages_of_n_blocks_with_projections_between_stages():
    model = models.resnet_cifar(32, seed=0)
    names = {layer.name for layer in model.layers}
    adds = sorted(name for name in names if name.endswith("_add"))
    assert len(adds) == 15  # (32 - 2) / 6 = 5 blocks per stage
    assert {"stage2_block1_shortcut_conv", "stage3_block1_shortcut_conv"} <= names
    assert "stage1_block1_shortcut_conv" not in names and "stage2_block2_shortcut_conv" not in names
    convs = [layer for layer in model.layers if layer.name.endswith(("_conv1", "_conv2")) or layer.name == "stem_conv"]
    assert len(convs) == 31  # plus the dense layer: depth 32


def test_seed_fixes_the_initialization():
    a, b = models.resnet_cifar(20, seed=3), models.resnet_cifar(20, seed=3)
    c = models.resnet_cifar(20, seed=4)
    for wa, wb, wc in zip(a.get_weights(), b.get_weights(), c.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.get_layer("stem_conv").get_weights()[0], c.get_layer("stem_conv").get_weights()[0])
    # layers get distinct seeds: two same-shaped kernels are not copies of each other
    k1 = a.get_layer("stage1_block1_conv1").get_weights()[0]
    k2 = a.get_layer("stage1_block1_conv2").get_weights()[0]
    assert not np.array_equal(k1, k2)


def test_vit_layers_seed_and_save_load(tmp_path):
    import keras

    model = models.get("vit_2", (28, 28, 1), 10, seed=1)
    names = [layer.name for layer in model.layers]
    assert names[:4] == ["images", "patch_embed", "patch_tokens", "pos_embed"]
    assert [n for n in names if n.endswith("_add")] == ["block1_attn_add", "block1_mlp_add", "block2_attn_add",
                                                        "block2_mlp_add"]
    assert model.get_layer("patch_tokens").output.shape == (None, 49, 64)
    same = models.get("vit_2", (28, 28, 1), 10, seed=1)
    for wa, wb in zip(model.get_weights(), same.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    x = np.random.default_rng(0).normal(size=(2, 28, 28, 1)).astype("float32")
    model.save(tmp_path / "vit.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "vit.keras")(x), model(x), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="divisible by patch=4"):
        models.vit(2, input_shape=(30, 30, 1))


@pytest.mark.parametrize("bad", ["resnet21", "resnet4", "lenet", "vgg19", "vit_0", "vit"])
def test_unknown_models_are_refused_with_the_accepted_names(bad):
    with pytest.raises(ValueError, match="Accepted: .*lenet_300_100"):
        models.get(bad, (32, 32, 3), 10)
