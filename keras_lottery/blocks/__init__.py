"""Residual blocks: find them, score them, remove them (layer tickets, Jordao et al. 2023).

    blocks = kl.blocks.find_blocks(model)                      # BlockList of Block, .message, .summary()
    scores = kl.blocks.score(model, data, criterion="grasp")   # {block name: float}, low = remove first
    ticket = kl.blocks.remove(model, kl.blocks.lowest(scores, k=3))

A block's name is the name of the ``Add`` layer (or ``x + y`` operation) that joins its shortcut and
branch, or of the residual layer (a transformer layer), after the path of the nested model holding it
(``"encoder/block1_add"``, ``"gpt2_backbone/transformer_layer_3"``) and, for a layer applied inside a
container layer's call, after the container's name (``"vit_encoder/transformer_block_1"``). KerasHub's
GPT-2, BERT, Gemma, Llama and ViT backbones and their task models lose layers and keep their class, and so do
models whose containers apply a list of blocks in a loop (Swin's stages, :mod:`.unlist`). See docs/blocks.md; depth pruning
of transformers (:mod:`.depth`: ShortGPT, Gromov et al., SLEB; :func:`heal`): docs/depth_pruning.md.
"""

from keras_lottery.blocks import criteria, depth
from keras_lottery.blocks.criteria import lowest, score
from keras_lottery.blocks.discovery import Block, BlockList, NoResidualBlocksWarning, find_blocks
from keras_lottery.blocks.healing import heal
from keras_lottery.blocks.rewrite import remove

__all__ = ["Block", "BlockList", "NoResidualBlocksWarning", "criteria", "depth", "find_blocks", "heal", "lowest",
           "remove", "score"]
