"""mlmhelpers.design: the random-effects term's level sums against np.bincount, for grouped rows
(sums over runs) and ungrouped ones."""

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
    M = rng.normal(size=(3, 200))  # three vectors, one per row
    expected = np.vstack([np.bincount(codes, weights=M[k], minlength=7) for k in range(3)])
    out = term.sum_by_level(M)
    assert out.shape == (3, 7)
    np.testing.assert_allclose(out, expected, rtol=1e-13)
    # a level with no rows sums to 0
    sparse_codes = np.where(codes == 3, 4, codes)
    t2 = RandomEffectsTerm("g", sparse_codes, term.levels, np.ones((200, 1)), ["(Intercept)"], [(0, 1, True)])
    assert t2.sum_by_level(v)[3] == 0.0
    # ungrouped rows (more runs than a quarter of the rows): the bincount path, same sums
    shuffled = rng.permutation(200)
    t3 = RandomEffectsTerm("g", codes[shuffled], term.levels, np.ones((200, 1)), ["(Intercept)"], [(0, 1, True)])
    assert t3._runs is None and term._runs is not None
    np.testing.assert_allclose(t3.sum_by_level(v[shuffled]), term.sum_by_level(v), rtol=1e-13)
    np.testing.assert_allclose(t3.sum_by_level(M[:, shuffled]), out, rtol=1e-13)
