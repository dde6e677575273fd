"""The model card of a KerasHub layer ticket (a backbone resized to fewer transformer layers) names the
removed blocks from kl.blocks.remove's record, and says null where layer names cannot tell."""

import pytest

import keras_lottery as kl
from keras_lottery import export

from tests.hub.conftest import BUILDERS


@pytest.mark.parametrize("name", ["gpt2_backbone", "vit_backbone"])
def test_resized_backbone_card_names_the_removed_blocks(tmp_path, name):
    dense = BUILDERS[name]()
    first = kl.blocks.find_blocks(dense).removable[0].name  # the first layer: a by-name guess would say the last
    ticket = kl.blocks.remove(dense, [first])
    assert ticket.removed_blocks == (first,)
    card = export.for_serving(ticket, tmp_path / "recorded", dense_model=dense, measure_dense=False).card
    assert card["ticket"] == "layer" and card["blocks_removed"] == [first] and card["layers_removed"] is None
    reloaded = type(ticket).from_config(ticket.get_config())  # what a saved ticket is: no record
    reloaded.set_weights(ticket.get_weights())
    card = export.for_serving(reloaded, tmp_path / "unknown", dense_model=dense, measure_dense=False).card
    assert card["ticket"] == "layer" and card["blocks_removed"] is None and card["layers_removed"] is None
