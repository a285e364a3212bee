"""lmer's answer does not depend on location, scale, row order or group labels (issue 12, defects 1–4, 6)."""

import time
import warnings

import numpy as np
import pandas as pd
import pytest

import mlmhelpers as mh


def _one_factor(seed=0, J=15, per=8):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), per)
    x = rng.normal(size=g.size)
    y = 3 + 0.7 * x + rng.normal(0, 0.8, J)[g] + rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{k:02d}" for k in g]})


def _crossed(seed=1, n=150):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 12, n)
    b = rng.integers(0, 5, n)
    x = rng.normal(size=n)
    y = 2 + x + rng.normal(0, 1, 12)[a] + rng.normal(0, 0.7, 5)[b] + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "a": a, "b": b})


CASES = [("y ~ x + (1 | g)", _one_factor), ("y ~ x + (1 + x | g)", _one_factor),
         ("y ~ x + (1 | a) + (1 | b)", _crossed)]


def _fit(formula, data, reml):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mh.lmer(formula, data, REML=reml)


@pytest.mark.parametrize("formula,make", CASES)
@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("c", [1e3, 1e6, 1e7])
def test_response_location_does_not_matter(formula, make, reml, c):
    d = make()
    m0, m1 = _fit(formula, d, reml), _fit(formula, d.assign(y=d.y + c), reml)
    # atol: a variance on the boundary is zero to about 1e-9 (its θ is not identified beyond that)
    np.testing.assert_allclose(m1.theta, m0.theta, rtol=1e-8, atol=1e-8)
    assert m1.opt.fun == pytest.approx(m0.opt.fun, rel=1e-10)
    expected = m0.fixef.to_numpy() + np.array([c] + [0.0] * (len(m0.fixef) - 1))
    np.testing.assert_allclose(m1.fixef.to_numpy(), expected, rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("formula,make", CASES[::2])
@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("c", [1e3, 1e6, 1e7])
def test_covariate_location_does_not_matter(formula, make, reml, c):
    # sd(x) = 10: at c = 1e7 the centred part of x is 1e-6 of its norm, above R's rank tolerance
    # (1e-7), so x is kept, as lme4 keeps it (with sd 1 both drop it: see the next test).
    d = make().assign(x=lambda t: 10 * t.x)
    m0, m1 = _fit(formula, d, reml), _fit(formula, d.assign(x=d.x + c), reml)
    np.testing.assert_allclose(m1.theta, m0.theta, rtol=1e-8, atol=1e-10)
    assert m1.opt.fun == pytest.approx(m0.opt.fun, rel=1e-10)
    b0, b1 = m0.fixef, m1.fixef
    assert b1["x"] == pytest.approx(b0["x"], rel=1e-7)
    assert b1["(Intercept)"] == pytest.approx(b0["(Intercept)"] - c * b0["x"], rel=1e-7, abs=1e-6)


@pytest.mark.parametrize("formula,make", CASES)
@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("a", [1e-4, 3.0, 1e5])
def test_response_scale_shifts_the_criterion_by_the_known_amount(formula, make, reml, a):
    d = make()
    m0, m1 = _fit(formula, d, reml), _fit(formula, d.assign(y=a * d.y), reml)
    np.testing.assert_allclose(m1.theta, m0.theta, rtol=1e-8, atol=1e-8)
    n, p = m0.nobs, len(m0.fixef)
    shift = 2 * (n - p if reml else n) * np.log(abs(a))
    assert m1.opt.fun == pytest.approx(m0.opt.fun + shift, rel=1e-10)
    np.testing.assert_allclose(m1.fixef.to_numpy(), a * m0.fixef.to_numpy(), rtol=1e-8)
    assert m1.sigma == pytest.approx(a * m0.sigma, rel=1e-8)


def test_covariate_below_rs_rank_tolerance_is_dropped_as_lme4_does():
    # lme4 1.1-31: lmer(y ~ I(x + 1e7) + (1|g)) drops the column (qr tol = 1e-7); so do we.
    d = _one_factor()
    with pytest.warns(UserWarning, match="rank deficient so dropping 1 column"):
        m = mh.lmer("y ~ x + (1 | g)", d.assign(x=d.x + 1e7))
    assert list(m.fixef.index) == ["(Intercept)"]


def test_large_offset_one_factor_model_of_the_issue():
    """Defect 1: y + 1e6 and y + 1e7 in y ~ 1 + (1 | g) gave θ off by 3 % and 60 %."""
    d = _one_factor(seed=4)
    base = _fit("y ~ 1 + (1 | g)", d, True)
    for c in (1e6, 1e7):
        m = _fit("y ~ 1 + (1 | g)", d.assign(y=d.y + c), True)
        assert m.theta.iloc[0] == pytest.approx(base.theta.iloc[0], rel=1e-8)


def _uncentred(seed=1, J=20, per=25):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), per)
    x = 1000 + rng.normal(size=J * per)
    a, s = rng.normal(0, 1, J), rng.normal(0, 0.3, J)
    y = 2 + a[g] + (0.5 + s[g]) * (x - 1000) + rng.normal(0, 1, J * per)
    return pd.DataFrame({"y": y, "x": x, "g": g})


@pytest.mark.parametrize("seed", [1, 2, 8])
def test_uncentred_slopes_do_not_depend_on_labels_or_row_order(seed):
    """Defect 2: with x ≈ 1000, relabelled groups or shuffled rows ended on different (boundary) points.

    The centred model (x − 1000) is the same model: its optimum criterion is the reference.
    """
    d = _uncentred(seed)
    centred = _fit("y ~ x + (1 + x | g)", d.assign(x=d.x - 1000), True)
    for k in range(3):
        perm = np.random.default_rng(100 + k).permutation(20)
        dk = d.assign(g=[f"L{perm[j]:02d}" for j in d.g]).sample(frac=1, random_state=k)
        m = _fit("y ~ x + (1 + x | g)", dk, True)
        assert m.converged
        assert m.opt.fun == pytest.approx(centred.opt.fun, rel=1e-9)
        assert m.is_singular == centred.is_singular
        assert m.varcorr.sdcor.iloc[1] == pytest.approx(centred.varcorr.sdcor.iloc[1], rel=1e-5)


def test_more_random_effects_than_observations_is_refused():
    """Defect 3: 40 groups × 2 rows with (1 + x | g) is 80 random effects for 80 rows."""
    rng = np.random.default_rng(0)
    d = pd.DataFrame({"g": np.repeat(np.arange(40), 2), "x": rng.normal(size=80), "y": rng.normal(size=80)})
    with pytest.raises(ValueError, match=r"number of observations \(=80\) <= number of random effects \(=80\) "
                                         r"for term \(1 \+ x \| g\)"):
        mh.lmer("y ~ x + (1 + x | g)", d)
    _fit("y ~ x + (1 | g)", d, True)  # 40 random effects: fine, as in lme4


def test_as_many_levels_as_observations_is_refused():
    d = pd.DataFrame({"g": np.arange(30), "x": np.arange(30.0), "y": np.sin(np.arange(30.0))})
    with pytest.raises(ValueError, match="number of levels of each grouping factor must be < number of "
                                         "observations \\(problems: g has 30 levels for 30 observations\\)"):
        mh.lmer("y ~ x + (1 | g)", d)


def test_single_level_factor_in_a_crossed_model_is_named():
    d = _crossed().assign(c="only")
    with pytest.raises(ValueError, match="grouping factors must have > 1 sampled level.*'c' has a single level"):
        mh.lmer("y ~ x + (1 | a) + (1 | c)", d)


@pytest.mark.parametrize("formula,match", [
    ("y ~ x + (1 | a) + (1 | a)", r"term \(1 \| a\) appears twice"),
    ("y ~ x | a", "must be wrapped in parentheses"),
    ("y ~ x + (1 | a + b)", "column names joined by ':'"),
])
def test_malformed_random_terms(formula, match):
    with pytest.raises(ValueError, match=match):
        mh.lmer(formula, _crossed())


@pytest.mark.parametrize("bad", ["no", 1, 0.0, None, "FALSE"])
def test_reml_must_be_a_bool(bad):
    """Defect 4: REML="no" fitted by REML."""
    with pytest.raises(TypeError, match="REML must be True or False"):
        mh.lmer("y ~ x + (1 | g)", _one_factor(), REML=bad)


def test_numpy_bool_reml_is_accepted():
    d = _one_factor()
    assert _fit("y ~ x + (1 | g)", d, np.bool_(False)).REML is False


def test_rank_deficiency_drops_the_later_column_as_r_does():
    """Defect 6: R's pivoted QR keeps the earlier columns; one QR, not one per column."""
    rng = np.random.default_rng(99)
    d = _one_factor().assign(z=lambda t: rng.normal(size=len(t)))
    d["w"] = d.x + 2 * d.z
    with pytest.warns(UserWarning, match="dropping 1 column\\(s\\): w"):
        m1 = mh.lmer("y ~ x + z + w + (1 | g)", d)
    with pytest.warns(UserWarning, match="dropping 1 column\\(s\\): z"):
        m2 = mh.lmer("y ~ w + x + z + (1 | g)", d)
    assert list(m1.fixef.index) == ["(Intercept)", "x", "z"]
    assert list(m2.fixef.index) == ["(Intercept)", "w", "x"]
    # the same column space: the same fit (the REML criterion differs by 2 log|det M| = 2 log 2)
    np.testing.assert_allclose(m1.fitted, m2.fitted, rtol=1e-8)
    assert m2.reml_criterion - m1.reml_criterion == pytest.approx(2 * np.log(2), rel=1e-6)


def test_rank_deficiency_with_a_large_factor_is_fast_enough_to_finish():
    """400 levels and a duplicated column: one QR of a 20,000 × 402 matrix (was minutes)."""
    rng = np.random.default_rng(1)
    n = 20_000
    d = pd.DataFrame({"f": rng.integers(0, 400, n), "x": rng.normal(size=n), "g": rng.integers(0, 30, n)})
    d["x2"] = 2 * d.x
    d["y"] = d.x + rng.normal(size=n)
    from mlmhelpers.formula import build_design, parse_formula

    t0 = time.perf_counter()
    with pytest.warns(UserWarning, match="dropping 1 column\\(s\\): x2"):
        design = build_design(parse_formula("y ~ x + factor(f) + x2 + (1 | g)"), d, require_random=True)
    assert design.X.shape[1] == 401
    assert time.perf_counter() - t0 < 60  # a guard against the O(n p^3) loop, not a benchmark


def test_callers_data_untouched_and_deterministic():
    d = _crossed()
    before = d.copy()
    m1, m2 = _fit("y ~ x + (1 | a) + (1 | b)", d, True), _fit("y ~ x + (1 | a) + (1 | b)", d, True)
    pd.testing.assert_frame_equal(d, before)
    np.testing.assert_array_equal(m1.theta, m2.theta)
