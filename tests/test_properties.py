"""Property tests of lmer(): invariances that any correct fit has, on random designs.

Hypothesis draws the design (number of groups, unbalanced group sizes including groups of one
row, a continuous and a factor covariate, a random intercept or a random intercept and slope,
REML or ML) and a seed for the values; each test fits the model twice, once to the data and
once to a transformed copy, and asserts what the transformation must (or must not) change:

* reordering the rows or renaming the groups changes nothing;
* ``y -> a*y + b`` leaves θ unchanged, shifts the criterion by ``2n log|a|`` (ML) or
  ``2(n - p) log|a|`` (REML) and maps β̂ to ``a β̂`` plus ``b`` on the intercept;
* ``x -> x + c`` for a covariate with a fixed effect only leaves θ and its slope unchanged
  and moves the intercept by ``-slope * c``;
* a second fit of the same data is identical, and the caller's DataFrame is untouched.

Offsets go up to 1e6 (calendar years, coordinates, salaries): the engine must not lose
precision to them. Tolerances: 1e-6 relative on θ (1e-6 absolute near zero), 1e-8 relative
on the criterion.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlmhelpers as mh

# Each example fits two small models (milliseconds each); the budget keeps this file at a few
# seconds. derandomize: the same examples every run, so a failure is reproducible in CI.
# No example database: nothing is written to the working tree.
SETTINGS = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

THETA_RTOL = 1e-6
CRIT_RTOL = 1e-8


@st.composite
def designs(draw):
    """A random unbalanced two-level data set and a model for it."""
    n_groups = draw(st.integers(min_value=3, max_value=9))
    sizes = draw(st.lists(st.integers(min_value=1, max_value=7), min_size=n_groups, max_size=n_groups))
    slope = draw(st.booleans())
    reml = draw(st.booleans())
    with_factor = draw(st.booleans())
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    sizes = np.array(sizes)
    # A random-effects model needs more rows than groups; top up the largest groups.
    need = n_groups * (3 if slope else 2) + 2
    while sizes.sum() < need:
        sizes[np.argmin(sizes)] += 2
    rng = np.random.default_rng(seed)
    g = np.repeat([f"g{k:02d}" for k in range(n_groups)], sizes)
    n = len(g)
    x = rng.normal(size=n)
    f = rng.choice(["a", "b", "c"], size=n)
    codes = np.repeat(np.arange(n_groups), sizes)
    b0 = rng.normal(scale=1.0, size=n_groups)[codes]
    b1 = rng.normal(scale=0.5, size=n_groups)[codes] if slope else 0.0
    y = 1.0 + 0.7 * x + b0 + b1 * x + rng.normal(scale=0.8, size=n)
    if with_factor:
        y = y + np.where(f == "b", 0.5, 0.0)
    data = pd.DataFrame({"y": y, "x": x, "f": f, "g": g})
    fixed = "x + f" if with_factor else "x"
    random = "(1 + x | g)" if slope else "(1 | g)"
    return data, f"y ~ {fixed} + {random}", reml


def _fit(formula: str, data: pd.DataFrame, reml: bool):
    with warnings.catch_warnings():
        # Random small data sets are often singular; that is a property of the data, not a
        # failure, and both fits of a pair must agree on it (compared below through θ).
        warnings.simplefilter("ignore", mh.SingularFitWarning)
        return mh.lmer(formula, data, REML=reml)


def _criterion(m) -> float:
    return m.reml_criterion if m.REML else m.deviance


def _assert_same_theta(a, b):
    ta, tb = np.abs(a.theta.to_numpy()), np.abs(b.theta.to_numpy())
    np.testing.assert_allclose(ta, tb, rtol=THETA_RTOL, atol=THETA_RTOL)


@given(designs(), st.randoms(use_true_random=False))
@SETTINGS
def test_row_order_does_not_matter(design, rnd):
    data, formula, reml = design
    order = list(range(len(data)))
    rnd.shuffle(order)
    m1 = _fit(formula, data, reml)
    m2 = _fit(formula, data.iloc[order], reml)
    _assert_same_theta(m1, m2)
    np.testing.assert_allclose(_criterion(m2), _criterion(m1), rtol=CRIT_RTOL)
    np.testing.assert_allclose(m2.fixef.to_numpy(), m1.fixef.to_numpy(), rtol=1e-6, atol=1e-8)


@given(designs(), st.randoms(use_true_random=False))
@SETTINGS
def test_group_labels_do_not_matter(design, rnd):
    data, formula, reml = design
    old = sorted(data["g"].unique())
    new = [f"h{k:02d}" for k in range(len(old))]
    rnd.shuffle(new)  # a relabelling that also changes the groups' sorted order
    relabelled = data.assign(g=data["g"].map(dict(zip(old, new, strict=True))))
    m1 = _fit(formula, data, reml)
    m2 = _fit(formula, relabelled, reml)
    _assert_same_theta(m1, m2)
    np.testing.assert_allclose(_criterion(m2), _criterion(m1), rtol=CRIT_RTOL)
    re1 = m1.ranef.rename(index=dict(zip(old, new, strict=True))).sort_index()
    np.testing.assert_allclose(m2.ranef.sort_index().to_numpy(), re1.to_numpy(), rtol=1e-5, atol=1e-7)


@given(designs(),
       st.sampled_from([1.0, -1.0, 0.001, 37.5, 1e4]),
       st.sampled_from([0.0, 3.0, -250.0, 1e4, 1e6]))
@SETTINGS
def test_affine_response(design, a, b):
    data, formula, reml = design
    m1 = _fit(formula, data, reml)
    m2 = _fit(formula, data.assign(y=a * data["y"] + b), reml)
    _assert_same_theta(m1, m2)
    n, p = m1.nobs, len(m1.fixef)
    shift = 2 * (n - p if reml else n) * np.log(abs(a))
    np.testing.assert_allclose(_criterion(m2), _criterion(m1) + shift, rtol=CRIT_RTOL,
                               atol=CRIT_RTOL * abs(shift))
    expected = a * m1.fixef
    expected["(Intercept)"] += b
    scale = np.abs(a) * (1.0 + np.abs(m1.fixef.to_numpy()))
    np.testing.assert_allclose(m2.fixef.to_numpy(), expected.to_numpy(),
                               atol=1e-6 * scale.max() + 1e-9 * abs(b))


@given(designs(), st.sampled_from([5.0, -40.0, 2016.0, 1e5, 1e6]))
@SETTINGS
def test_shifted_fixed_only_covariate(design, c):
    data, formula, reml = design
    if "1 + x | g" in formula:  # x has a random slope here: shifting it changes the model
        formula = formula.replace("(1 + x | g)", "(1 | g)")
    m1 = _fit(formula, data, reml)
    m2 = _fit(formula, data.assign(x=data["x"] + c), reml)
    _assert_same_theta(m1, m2)
    np.testing.assert_allclose(_criterion(m2), _criterion(m1), rtol=CRIT_RTOL)
    slope = m1.fixef["x"]
    np.testing.assert_allclose(m2.fixef["x"], slope, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(m2.fixef["(Intercept)"], m1.fixef["(Intercept)"] - slope * c,
                               rtol=1e-6, atol=1e-6 * (1 + abs(slope * c)))


@given(designs())
@settings(max_examples=10, deadline=None, derandomize=True, database=None)
def test_deterministic_and_data_untouched(design):
    data, formula, reml = design
    before = data.copy(deep=True)
    m1 = _fit(formula, data, reml)
    m2 = _fit(formula, data, reml)
    pd.testing.assert_frame_equal(data, before)
    assert np.array_equal(m1.theta.to_numpy(), m2.theta.to_numpy())
    assert np.array_equal(m1.fixef.to_numpy(), m2.fixef.to_numpy())
    assert _criterion(m1) == _criterion(m2)


@pytest.mark.parametrize("reml", [True, False])
def test_large_offset_example_from_the_issue(reml):
    """The differential test's case: y + 1e6 in `y ~ 1 + (1|g)` moved θ by 3 % before v2."""
    rng = np.random.default_rng(12)
    g = np.repeat(np.arange(30), 5)
    y = rng.normal(size=30)[g] * 0.8 + rng.normal(size=150)
    d = pd.DataFrame({"y": y, "g": g.astype(str)})
    m1 = _fit("y ~ 1 + (1 | g)", d, reml)
    for c in (1e6, 1e7):
        m2 = _fit("y ~ 1 + (1 | g)", d.assign(y=d["y"] + c), reml)
        _assert_same_theta(m1, m2)
        np.testing.assert_allclose(_criterion(m2), _criterion(m1), rtol=CRIT_RTOL)
