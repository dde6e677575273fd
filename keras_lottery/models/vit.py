"""A small vision transformer (Dosovitskiy et al. 2021) for 28- and 32-pixel images.

Pre-norm encoder blocks: ``x + Attention(LN(x))`` then ``x + MLP(LN(x))``, each residual an ``Add``
layer, so every attention and every MLP is one removable residual block for the layer lottery.
The image is cut into ``patch x patch`` patches by a strided convolution; a learned position
embedding is added; the tokens are averaged (no class token) before the classifier.
"""

import keras

from keras_lottery.models._init import InitializerFactory


@keras.saving.register_keras_serializable(package="keras_lottery")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned embedding, one vector per token position, to a ``(batch, tokens, dim)`` input."""

    def __init__(self, initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        self.embedding = self.add_weight(name="embedding", shape=tuple(input_shape[1:]),
                                         initializer=self.initializer)

    def call(self, inputs):
        return inputs + keras.ops.cast(self.embedding, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "initializer": keras.initializers.serialize(self.initializer)}


def vit(depth=4, input_shape=(28, 28, 1), classes=10, patch=4, dim=64, heads=4, mlp_ratio=2, seed=None):
    """A vision transformer with ``depth`` pre-norm encoder blocks.

    Args:
        depth: number of encoder blocks (each holds two residual blocks: attention and MLP).
        input_shape: image shape; height and width must be multiples of ``patch``.
        classes: number of output logits.
        patch: patch side in pixels (4: 49 tokens for 28x28, 64 for 32x32).
        dim, heads, mlp_ratio: token width, attention heads, MLP hidden width / ``dim``.
        seed: fixes the initialization.

    Layers: ``patch_embed``, ``patch_tokens``, ``pos_embed``, then for encoder block b
    ``block{b}_ln1`` / ``_attn`` / ``_attn_add`` / ``_ln2`` / ``_mlp1`` / ``_mlp2`` / ``_mlp_add``,
    then ``final_ln``, ``pool`` and ``predictions``. The residual blocks are named
    ``block{b}_attn_add`` and ``block{b}_mlp_add``.
    """
    height, width = input_shape[0], input_shape[1]
    if depth < 1 or height % patch or width % patch:
        raise ValueError(f"vit needs depth >= 1 and an image side divisible by patch={patch}; got depth={depth}, "
                         f"input_shape={tuple(input_shape)}.")
    init = InitializerFactory(seed)
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = keras.layers.Conv2D(dim, patch, strides=patch, kernel_initializer=init("GlorotUniform"),
                            name="patch_embed")(inputs)
    x = keras.layers.Reshape(((height // patch) * (width // patch), dim), name="patch_tokens")(x)
    x = PositionEmbedding(init("TruncatedNormal", stddev=0.02), name="pos_embed")(x)
    for b in range(1, depth + 1):
        h = keras.layers.LayerNormalization(epsilon=1e-6, name=f"block{b}_ln1")(x)
        h = keras.layers.MultiHeadAttention(heads, dim // heads, kernel_initializer=init("GlorotUniform"),
                                            name=f"block{b}_attn")(h, h)
        x = keras.layers.Add(name=f"block{b}_attn_add")([x, h])
        h = keras.layers.LayerNormalization(epsilon=1e-6, name=f"block{b}_ln2")(x)
        h = keras.layers.Dense(dim * mlp_ratio, activation="gelu", kernel_initializer=init("GlorotUniform"),
                               name=f"block{b}_mlp1")(h)
        h = keras.layers.Dense(dim, kernel_initializer=init("GlorotUniform"), name=f"block{b}_mlp2")(h)
        x = keras.layers.Add(name=f"block{b}_mlp_add")([x, h])
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="final_ln")(x)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    outputs = keras.layers.Dense(classes, kernel_initializer=init("GlorotUniform"), name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"vit{depth}")
