"""A registry of residual-block scores. Convention: **low score = remove first**.

Built-in criteria (``names()`` lists them):

At initialization, data-dependent (loss: sparse categorical cross-entropy from logits by default;
batch norm in training mode, as in the SNIP and GraSP papers; no state of the model is updated):

* ``snip``: per weight ``|w * dL/dw|`` (Lee et al. 2019); block score = **sum** over the block's
  trainable weights (its "connection sensitivity mass").
* ``grasp``: per weight ``S = -w * (H g)`` with ``g = dL/dw`` and ``H`` the Hessian (Wang et al. 2020),
  ``H g`` by forward-over-reverse differentiation on a twin of the model whose batch norm keeps second
  derivatives (see :class:`ExactBatchNormalization`).
  GraSP removes the weights with the *largest* ``S``; a block's score is therefore
  ``sum(w * H g) = -sum(S)``, which is sign-aware: to first order, zeroing the whole block changes
  the squared gradient norm by ``-2 * sum(w * H g)``, so the block with the lowest score is the one
  whose removal hurts gradient flow least (or helps it most).

The sum is the default aggregation because removing a block removes all its weights at once, and
the first-order (Taylor) effect of zeroing a set of weights is the sum of the per-weight terms.
``aggregate="mean"`` (mean per weight, removing the bias toward blocks with many weights) is
available for ``snip``, ``grasp`` and ``synflow``: ``score(..., aggregate="mean")``.

At initialization, data-free:

* ``synflow``: ``w * dR/dw`` with ``R`` the sum of the outputs of the network with ``|w|`` on an
  all-ones input (Tanaka et al. 2020), computed in float64 on a copy, batch norm in inference mode;
  block score = sum.
* ``random``: uniform numbers from ``numpy.random.default_rng(seed)``, in graph order.

After training (they accept the same call, data given):

* ``l1``: sum of ``|w|`` of the branch's trainable weights. Biased toward early stages: wider
  later blocks have more weights, so early blocks score lowest (rejected by Jordao et al.; kept as a
  baseline, see the tests).
* ``hrank``: mean matrix rank of the branch output's feature maps (per example and channel).
* ``expectabs``: mean absolute value of the branch output.
* ``pls``: label information in the branch output: per-block PLS projections of its pooled channels,
  then the mean VIP of the block's projections in one PLS over all blocks (our reading of Jordao et
  al. 2020, see :func:`pls`).
* ``kl``: mean ``KL(p || q)`` between the softmax of the network's output ``p`` and the output ``q``
  with the block's branch removed (``from_logits=False`` if the outputs are already probabilities).
* ``cka``: ``1 - linear CKA`` between the network's representation with and without the block
  (the input of the output layer by default, ``layer=`` to choose one): similar representations
  mean an unimportant block, so it scores low.

After training, from calibration batches (transformers; see docs/depth_pruning.md):

* ``block_influence``: ShortGPT's ``1 - cos(x, y)`` between the block's input and output.
* ``angular``: Gromov et al.'s ``arccos(cos(x, y)) / pi`` (one block; :func:`windows` for ``n``
  consecutive ones).
* ``last``: minus the position: the last blocks go first.

SLEB's iterative removal by calibration loss is not a per-block score:
:func:`keras_lottery.blocks.depth.select` runs it (and picks Gromov's window).

Register your own with :func:`register`; a criterion is called as
``fn(model, blocks, data, *, loss, seed, **options)`` where ``blocks`` are the removable
:class:`~keras_lottery.blocks.discovery.Block` objects, ``data`` a list of ``(x, y)`` batches (or
``None`` when none was given) and ``loss`` a ``loss(y_true, y_pred)`` callable, and must return
``{block.name: float}`` for every block. A criterion that calls ``loss`` should set
``fn.uses_loss = True``: :func:`score` then refuses a model with several outputs and no ``loss=``
before any work, with a message naming the outputs.
"""

# The registry and the entry points first; then the criteria modules, whose import registers the
# built-in criteria (in this order).
from keras_lottery.blocks.criteria.registry import get, names, register, unregister
from keras_lottery.blocks.criteria.scoring import _as_batches, _as_loss, lowest, score  # noqa: F401 (tests use _as_loss)
from keras_lottery.blocks.criteria.autodiff import (ExactBatchNormalization, gradient_and_hessian_product, gradients,
                                                  hessian_vector_product, twin)
from keras_lottery.blocks.criteria.saliency import grasp, snip, synflow
from keras_lottery.blocks.criteria.baselines import l1, random_scores
from keras_lottery.blocks.criteria.activations import branch_outputs, expectabs, hrank, pls
from keras_lottery.blocks.criteria.ablation import cka, kl_divergence, linear_cka
from keras_lottery.blocks.criteria.similarity import angular, block_influence, last, windows

__all__ = [
    "angular", "block_influence", "last", "windows", "ExactBatchNormalization", "branch_outputs", "gradient_and_hessian_product", "cka", "expectabs", "get", "gradients", "grasp",
    "hessian_vector_product", "hrank", "kl_divergence", "l1", "linear_cka", "lowest", "names", "pls",
    "random_scores", "register", "score", "snip", "synflow", "twin", "unregister",
]
