"""Former home of block discovery and of the functional graph, kept so existing imports work.

Block discovery is :mod:`keras_lottery.blocks.discovery`; the functional graph shared by the cost
model and the blocks is :mod:`keras_lottery.graph` (see docs/design.md). New code imports those.
"""

from keras_lottery.blocks.discovery import Block, BlockList, NoResidualBlocksWarning, find_blocks
from keras_lottery.graph import FunctionalGraph, is_functional

__all__ = ["Block", "BlockList", "FunctionalGraph", "NoResidualBlocksWarning", "find_blocks", "is_functional"]
