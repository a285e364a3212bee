"""The engine against dense, from-the-definition computations (tests/dense.py)."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import approx_fprime

import mlmhelpers as mh
from mlmhelpers.engine import (ThetaMap, conditional_variances, criterion, criterion_and_gradient,
                               fixed_vcov, pls, sufficient_stats)
from mlmhelpers.formula import build_design, parse_formula

from dense import brute_force_minimum, dense_criterion, dense_fit_quantities


def _small_data(seed=3, n_groups=6, per=7):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    x = rng.normal(size=g.size)
    a = rng.normal(0, 1.5, n_groups)
    s = rng.normal(0, 0.7, n_groups)
    y = 2 + a[g] + (1 + s[g]) * x + rng.normal(0, 1, g.size)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{k}" for k in g]})


FORMULAS = [
    "y ~ x + (1 | g)",
    "y ~ x + (0 + x | g)",
    "y ~ x + (1 + x | g)",
    "y ~ x + (x || g)",
]


def _setup(formula, data):
    d = build_design(parse_formula(formula), data, require_random=True)
    tmap = ThetaMap(d.Z.shape[1], d.z_blocks)
    stats = sufficient_stats(d.y, d.X, d.Z, d.groups, len(d.levels))
    return d, tmap, stats


@pytest.mark.parametrize("formula", FORMULAS)
@pytest.mark.parametrize("reml", [True, False])
def test_criterion_equals_dense_definition(formula, reml):
    data = _small_data()
    d, tmap, stats = _setup(formula, data)
    rng = np.random.default_rng(1)
    for _ in range(3):
        theta = tmap.theta0 + rng.uniform(-0.4, 0.8, tmap.size)
        theta = tmap.canonical(theta)
        ours = criterion(theta, stats, tmap, reml)
        ref = dense_criterion(theta, tmap.rows, tmap.cols, d.y, d.X, d.Z, d.groups, len(d.levels), reml)
        assert ours == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("formula", FORMULAS)
@pytest.mark.parametrize("reml", [True, False])
def test_gradient_matches_finite_differences(formula, reml):
    d, tmap, stats = _setup(formula, _small_data())
    theta = tmap.theta0 + np.linspace(0.1, 0.4, tmap.size)
    _, grad = criterion_and_gradient(theta, stats, tmap, reml)
    num = approx_fprime(theta, lambda t: criterion(t, stats, tmap, reml), 1e-7)
    np.testing.assert_allclose(grad, num, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("formula", FORMULAS)
@pytest.mark.parametrize("reml", [True, False])
def test_optimum_agrees_with_brute_force(formula, reml):
    data = _small_data()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        m = mh.lmer(formula, data, REML=reml)
    # Some of these small ML fits are singular; then, and only then, lmer says so.
    assert [str(w.message) for w in rec] == (["boundary (singular) fit: see help('isSingular')"]
                                             if m.is_singular else [])
    d, tmap = m.design, m.tmap

    def dense(theta):
        return dense_criterion(theta, tmap.rows, tmap.cols, d.y, d.X, d.Z, d.groups, len(d.levels), reml)

    fmin, _ = brute_force_minimum(dense, tmap.theta0)
    # Ours is at least as good as the brute-force search and agrees to 1e-6 relative.
    assert m.opt.fun <= fmin + 1e-7 * abs(fmin)
    assert m.opt.fun == pytest.approx(fmin, rel=1e-6)
    assert m.opt.converged


@pytest.mark.parametrize("formula", FORMULAS)
def test_closed_form_quantities_equal_dense(formula):
    data = _small_data()
    m = mh.lmer(formula, data)
    d, tmap = m.design, m.tmap
    ref = dense_fit_quantities(m.sol.theta, tmap.rows, tmap.cols, d.y, d.X, d.Z, d.groups, len(d.levels), True)
    np.testing.assert_allclose(m.fixef.to_numpy(), ref["beta"], rtol=1e-9)
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-9)
    np.testing.assert_allclose(m.vcov.to_numpy(), ref["vcov"], rtol=1e-8)
    np.testing.assert_allclose(m.ranef.to_numpy(), ref["b"], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(m.condvar, ref["condvar"], rtol=1e-8, atol=1e-12)


def test_pls_residual_identity():
    """r² from sufficient statistics equals ‖y − Xβ − Zb‖² + ‖u‖² computed row by row."""
    d, tmap, stats = _setup("y ~ x + (1 + x | g)", _small_data())
    sol = pls(np.array([0.8, 0.2, 0.5]), stats, tmap)
    fitted = d.X @ sol.beta + np.einsum("nq,nq->n", d.Z, sol.b[d.groups])
    direct = np.sum((d.y - fitted) ** 2) + np.sum(sol.u**2)
    assert sol.pwrss == pytest.approx(direct, rel=1e-10)


def test_canonical_theta_keeps_covariance():
    tmap = ThetaMap(2, [(0, 2, True)])
    theta = np.array([-1.2, 0.4, -0.3])
    can = tmap.canonical(theta)
    assert np.all(can[tmap.is_diag] >= 0)
    L1, L2 = tmap.Lambda(theta), tmap.Lambda(can)
    np.testing.assert_allclose(L1 @ L1.T, L2 @ L2.T)


def test_theta_ordering_is_lme4s():
    # lme4: for a 2 x 2 block theta = (lambda11, lambda21, lambda22); || gives two 1 x 1 blocks.
    t = ThetaMap(2, [(0, 2, True)])
    assert list(zip(t.rows, t.cols)) == [(0, 0), (1, 0), (1, 1)]
    t2 = ThetaMap(2, [(0, 1, False), (1, 2, False)])
    assert list(zip(t2.rows, t2.cols)) == [(0, 0), (1, 1)]


def test_vcov_is_sigma2_inverse_of_xt_vinv_x():
    d, tmap, stats = _setup("y ~ x + (1 | g)", _small_data())
    sol = pls(np.array([0.9]), stats, tmap)
    sig = sol.sigma(True)
    ref = dense_fit_quantities(np.array([0.9]), tmap.rows, tmap.cols, d.y, d.X, d.Z, d.groups, len(d.levels), True)
    np.testing.assert_allclose(fixed_vcov(sol, sig), ref["vcov"], rtol=1e-9)
    np.testing.assert_allclose(conditional_variances(sol, sig), ref["condvar"], rtol=1e-9)
