"""keras_lottery.sparsity against TFMOT itself (tf_keras, in a child interpreter): the same initial
weights, data and schedule give the same masks after every step."""

import numpy as np

from keras_lottery.sparsity import parity
from keras_lottery.sparsity.schedules import ConstantSparsity, PolynomialDecay

MLP = [["dense", 32, "relu"], ["dense", 4]]
CASES = {
    "polynomial": parity.make_case(MLP, schedule=PolynomialDecay(0.2, 0.8, 2, 14, frequency=3)),
    "block_max": parity.make_case(MLP, schedule=PolynomialDecay(0.2, 0.7, 1, 13, frequency=4), block_size=(2, 2),
                                  block_pooling_type="MAX", seed=2),
    "block_avg": parity.make_case([["dense", 32, "relu"], ["dense", 8]], outputs=8, block_size=(4, 1), seed=3,
                                  schedule=ConstantSparsity(0.6, 3, 15, frequency=4)),
    "m_by_n_conv": parity.make_case([["conv", 8, 3], ["flatten"], ["dense", 4]], input_shape=(6, 6, 4),
                                    sparsity_m_by_n=(2, 4), seed=4),
}


def test_masks_match_tfmot_step_by_step():
    records = parity.run_tfmot(list(CASES.values()))
    for (name, case), record in zip(CASES.items(), records):
        # Exact: this library's rule on TFMOT's own weights before each turn gives TFMOT's mask.
        replayed = parity.replay(case, record)
        assert replayed and set(replayed.values()) == {0}, (name, replayed)
        # End to end: both frameworks train from the same weights; masks agree after every step.
        result = parity.compare(case, record)
        assert max(result["mismatch"]) == 0.0, (name, result["mismatch"])
        densities = result["density_ours"]
        assert min(densities) < 0.9 and len(densities) == case["steps"], name
        if name == "m_by_n_conv":
            assert np.allclose(densities, 0.5)
