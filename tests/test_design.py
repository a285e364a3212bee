"""mlmhelpers.design: the random-effects term's level sums against np.bincount."""

import numpy as np
import pandas as pd

from mlmhelpers.design import RandomEffectsTerm


def test_sum_by_level_equals_bincount_for_vectors_and_matrices():
    rng = np.random.default_rng(0)
    codes = np.sort(rng.integers(0, 7, size=200))  # grouped rows, as data usually come
    codes[-1] = 6  # every level used
    term = RandomEffectsTerm("g", codes, pd.Index([f"l{i}" for i in range(7)], name="g"),
                             np.ones((200, 1)), ["(Intercept)"], [(0, 1, True)])
    v = rng.normal(size=200)
    np.testing.assert_allclose(term.sum_by_level(v), np.bincount(codes, weights=v, minlength=7), rtol=1e-13)
    M = rng.normal(size=(200, 3))
    expected = np.column_stack([np.bincount(codes, weights=M[:, k], minlength=7) for k in range(3)])
    out = term.sum_by_level(M)
    assert out.shape == (7, 3)
    np.testing.assert_allclose(out, expected, rtol=1e-13)
    # a level with no rows sums to 0
    sparse_codes = np.where(codes == 3, 4, codes)
    t2 = RandomEffectsTerm("g", sparse_codes, term.levels, np.ones((200, 1)), ["(Intercept)"], [(0, 1, True)])
    assert t2.sum_by_level(v)[3] == 0.0
