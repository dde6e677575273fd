"""Healing: fine-tune a depth-pruned model on a little data (Gromov et al.: "healing" with QLoRA).

    history = kl.blocks.heal(slim, train_batches, epochs=1, lora_rank=4)

Full fine-tuning by default; with ``lora_rank`` only low-rank adapters train, through KerasHub's
``backbone.enable_lora(rank)`` (the backbone's other weights frozen; the adapters add to the query
and value projections).
"""

from __future__ import annotations

import keras

__all__ = ["heal"]


def heal(model, data, epochs=1, steps_per_epoch=None, learning_rate=1e-4, lora_rank=None, loss=None,
         weight_decay=0.01):
    """Fine-tune ``model`` in place (AdamW); returns the ``keras.callbacks.History``.

    Args:
        model: the slim model (a KerasHub task model for LoRA).
        data: what ``model.fit`` takes: a ``tf.data.Dataset`` of ``(x, y)`` or ``(x, y, sample_weight)``.
        epochs, steps_per_epoch: passed to ``fit``.
        learning_rate, weight_decay: AdamW's.
        lora_rank: None for full fine-tuning; an int for LoRA of that rank through
            ``model.backbone.enable_lora`` (or ``model.enable_lora`` for a backbone).
        loss: a Keras loss (default: sparse categorical cross-entropy from logits).
    """
    if lora_rank is not None:
        backbone = getattr(model, "backbone", model)
        if not callable(getattr(backbone, "enable_lora", None)):
            raise ValueError(f"lora_rank needs a KerasHub model with backbone.enable_lora; {model.name!r} "
                             f"({type(model).__name__}) has none.")
        if not isinstance(lora_rank, int) or isinstance(lora_rank, bool) or lora_rank < 1:
            raise ValueError(f"lora_rank must be a positive int, got {lora_rank!r}.")
        backbone.enable_lora(lora_rank)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay),
                  loss=loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model.fit(data, epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=0)
