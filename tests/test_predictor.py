"""The engine (design, predictor, response, optimizer) against dense, from-the-definition computations.

tests/dense.py builds Z with all terms side by side and Λ block diagonal, then works with the
n × n marginal covariance V; nothing there shares code with mlmhelpers' blocked factorisation.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from dense import brute_force_minimum, dense_multi, dense_Z
from scipy.optimize import approx_fprime

import mlmhelpers as mh
from mlmhelpers.design import ThetaMap
from mlmhelpers.predictor import LinearPredictor
from mlmhelpers.response import GaussianResponse, ScaledTheta


def _nested(seed=0, n_a=5, per_a=3):
    """b nested in a; unbalanced, some cells of size 1; a covariate and a two-level factor."""
    rng = np.random.default_rng(seed)
    rows = []
    for a in range(n_a):
        for b in range(per_a):
            for _ in range(rng.integers(1, 6)):
                rows.append((f"A{a}", f"B{b}"))
    df = pd.DataFrame(rows, columns=["a", "b"])
    n = len(df)
    df["x"] = rng.normal(size=n)
    df["f"] = rng.choice(["u", "v"], size=n)
    ea = rng.normal(0, 1.2, n_a)
    eab = rng.normal(0, 0.8, (n_a, per_a))
    ai = df.a.str[1:].astype(int).to_numpy()
    bi = df.b.str[1:].astype(int).to_numpy()
    df["y"] = 1 + 0.5 * df.x + ea[ai] + eab[ai, bi] + (0.3 * ea[ai]) * df.x + rng.normal(0, 1, n)
    return df


def _crossed(seed=1, n=90, n_a=7, n_b=4):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n_a, n)
    b = rng.integers(0, n_b, n)
    x = rng.normal(size=n)
    y = 2 + x + rng.normal(0, 1, n_a)[a] + rng.normal(0, 0.7, n_b)[b] + rng.normal(0, 0.5, n_a)[a] * x \
        + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "a": [f"a{i}" for i in a], "b": [f"b{i}" for i in b],
                         "f": rng.choice(["p", "q", "r"], size=n)})


CASES = [
    ("y ~ x + (1 | a/b)", _nested),
    ("y ~ x + (1 + x | a) + (1 | b:a)", _nested),
    ("y ~ x + f + (x || a) + (1 | a:b)", _nested),
    ("y ~ x + (1 | a) + (1 | b)", _crossed),
    ("y ~ x + (1 + x | a) + (1 | b)", _crossed),
    ("y ~ x + (0 + f | a) + (1 | b)", _crossed),
    ("y ~ x + (1 | a) + (0 + x | a) + (1 | b)", _crossed),
]


def _engine(formula, data, reml):
    from mlmhelpers.formula import build_design, parse_formula

    d = build_design(parse_formula(formula), data, require_random=True)
    lp = LinearPredictor(d.X, d.terms)
    return d, lp, GaussianResponse(lp, d.y, reml)


def _random_theta(lp, rng):
    theta = lp.theta0 + rng.uniform(-0.4, 0.8, lp.n_theta) * np.where(lp.is_diag, 1.0, 0.5)
    return lp.canonical(theta)


@pytest.mark.parametrize("formula,make", CASES)
@pytest.mark.parametrize("reml", [True, False])
def test_criterion_and_solution_equal_dense_definition(formula, make, reml):
    d, lp, resp = _engine(formula, make(), reml)
    rng = np.random.default_rng(5)
    for _ in range(2):
        theta = _random_theta(lp, rng)
        ref = dense_multi(theta, d.y, d.X, d.terms, reml)
        sol = resp.pls(theta)
        assert sol.deviance(reml) == pytest.approx(ref["criterion"], rel=1e-10)
        np.testing.assert_allclose(sol.beta, ref["beta"], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(sol.b, ref["b"], rtol=1e-8, atol=1e-10)
        s = sol.sigma(reml)
        assert s == pytest.approx(ref["sigma"], rel=1e-9)
        vcov = s**2 * np.linalg.inv(sol.RX @ sol.RX.T)
        np.testing.assert_allclose(vcov, ref["vcov"], rtol=1e-8)
        for ours, theirs in zip(sol.factor.condvar_blocks(), ref["condvar"], strict=True):
            np.testing.assert_allclose(s**2 * ours, theirs, rtol=1e-8, atol=1e-12)
        # the flat u: b = Λu and Z Λ u is the random part of the fit
        np.testing.assert_allclose(ref["Lambda"] @ sol.u, sol.b, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(lp.zlambda(theta, sol.u), ref["Z"] @ sol.b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("formula,make", CASES)
@pytest.mark.parametrize("reml", [True, False])
def test_fit_equals_dense_at_the_optimum_and_is_a_minimum(formula, make, reml):
    data = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mh.lmer(formula, data, REML=reml)
    d = m.design
    ref = dense_multi(m.sol.theta, d.y, d.X, d.terms, reml)
    assert m.opt.fun == pytest.approx(ref["criterion"], rel=1e-10)
    np.testing.assert_allclose(m.fixef.to_numpy(), ref["beta"], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(m.vcov.to_numpy(), ref["vcov"], rtol=1e-8)
    np.testing.assert_allclose(m.sol.b, ref["b"], rtol=1e-8, atol=1e-10)
    cv = m.condvar if len(m.terms) > 1 else {m.terms[0].name: m.condvar}
    for t, theirs in zip(m.terms, ref["condvar"], strict=True):
        np.testing.assert_allclose(cv[t.name], theirs, rtol=1e-8, atol=1e-12)
    # No better point nearby: the dense criterion at random perturbations is never lower.
    rng = np.random.default_rng(2)
    for _ in range(6):
        th = m.sol.theta + rng.normal(0, 1e-3, m.n_theta)
        th = np.where(m.predictor.is_diag, np.abs(th), th)
        assert dense_multi(th, d.y, d.X, d.terms, reml)["criterion"] >= m.opt.fun - 1e-9


@pytest.mark.parametrize("formula,make", [CASES[0], CASES[3]])
def test_optimum_agrees_with_brute_force(formula, make):
    data = make()
    m = mh.lmer(formula, data)
    d = m.design

    def dense(theta):
        return dense_multi(np.abs(theta), d.y, d.X, d.terms, True)["criterion"]

    fmin, _ = brute_force_minimum(dense, m.predictor.theta0)
    assert m.opt.fun <= fmin + 1e-7 * abs(fmin)
    assert m.opt.fun == pytest.approx(fmin, rel=1e-6)
    assert m.converged


@pytest.mark.parametrize("formula", ["y ~ x + (1 | a)", "y ~ x + (0 + x | a)", "y ~ x + (1 + x | a)",
                                     "y ~ x + (x || a)"])
@pytest.mark.parametrize("reml", [True, False])
def test_one_term_gradient_is_exact(formula, reml):
    _, lp, resp = _engine(formula, _crossed(), reml)
    theta = lp.theta0 + np.linspace(0.1, 0.4, lp.n_theta)
    _, grad = resp.objective_and_gradient(theta)
    num = approx_fprime(theta, resp.objective, 1e-7)
    np.testing.assert_allclose(grad, num, rtol=1e-4, atol=1e-5)


def test_full_matrix_gradient_for_scaled_search():
    _, lp, resp = _engine("y ~ x + (1 + x | a)", _crossed(), True)
    lam = np.array([[0.9, 0.3], [-0.2, 0.6]])  # not triangular: any square Λ
    f, G = resp.objective_and_gradient_matrix([lam])
    for r in range(2):
        for c in range(2):
            e = np.zeros((2, 2))
            e[r, c] = 1e-6
            num = (resp.objective_lambdas([lam + e]) - resp.objective_lambdas([lam - e])) / 2e-6
            assert G[r, c] == pytest.approx(num, rel=1e-5, abs=1e-6)


def test_scaled_theta_round_trip_and_same_model():
    data = _crossed().assign(x=lambda d: 1000 + d.x)
    _, lp, resp = _engine("y ~ x + (1 + x | a) + (1 | b)", data, True)
    sc = ScaledTheta(lp)
    assert not sc.is_identity
    th_tilde = np.array([0.7, -0.2, 0.4, 0.9])
    theta = sc.to_theta(th_tilde)
    np.testing.assert_allclose(sc.from_theta(theta), th_tilde, rtol=1e-10)
    # equal up to rounding: the block Z = [1, x ≈ 1000] has condition number ~1e6
    assert resp.objective_lambdas(sc.lambdas(th_tilde)) == pytest.approx(resp.objective(theta), rel=1e-10)


# ------------------------------------------------------------------ contract (CONTRACT.md §1)
def test_contract_attributes():
    d, lp, _ = _engine("y ~ x + (1 + x | a) + (1 | b)", _crossed(), True)
    assert (lp.n, lp.p, lp.q) == (90, 2, 7 * 2 + 4)
    assert lp.n_theta == 4
    np.testing.assert_array_equal(lp.theta0, [1, 0, 1, 1])
    np.testing.assert_array_equal(lp.lower, [0, -np.inf, 0, 0])


def _weighted_equals_dense(d, lp, theta, w):
    """The weighted factorisation and PLS solution at θ, checked against the dense definition."""
    fac = lp.factorize(theta, sqrtw=np.sqrt(w))
    sol = fac.solve(d.y)
    ref = dense_multi(theta, d.y, d.X, d.terms, False, weights=w)
    np.testing.assert_allclose(sol.beta, ref["beta"], rtol=1e-8)
    np.testing.assert_allclose(sol.b, ref["b"], rtol=1e-8, atol=1e-10)
    ZL = ref["Z"] @ ref["Lambda"]
    ldL2 = np.linalg.slogdet(ZL.T @ (w[:, None] * ZL) + np.eye(lp.q))[1]
    assert fac.ldL2 == pytest.approx(ldL2, rel=1e-10)
    r = d.y - d.X @ sol.beta - ZL @ sol.u
    assert sol.pwrss == pytest.approx(np.sum(w * r**2) + sol.u @ sol.u, rel=1e-10)
    return fac, sol


def test_weighted_solve_equals_dense_gls():
    """solve() with sqrtw minimises ‖√w ⊙ (y − Xβ − ZΛu)‖² + ‖u‖²; ldL2 = log|ΛᵀZᵀWZΛ + I|."""
    d, lp, _ = _engine("y ~ x + (1 + x | a) + (1 | b)", _crossed(), True)
    rng = np.random.default_rng(3)
    w = rng.uniform(0.3, 2.0, lp.n)
    theta = np.array([0.8, 0.2, 0.5, 1.1])
    fac, sol = _weighted_equals_dense(d, lp, theta, w)
    # solve_u: β held at 0, so the caller passes y − Xβ
    sol_u = fac.solve_u(d.y - d.X @ sol.beta)
    np.testing.assert_allclose(sol_u.u, sol.u, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(sol_u.beta, 0.0)


@pytest.mark.parametrize("formula", ["y ~ x + (1 | a) + (1 | b)", "y ~ x + (0 + x | a) + (1 | b) + (1 | f)",
                                     "y ~ x + (1 | a)"])
def test_weighted_scalar_terms_equal_dense_gls_and_general_path(formula):
    """Scalar terms with weights take a bincount path: the same numbers as the dense definition
    and as the general (sparse) path, including RX and the conditional variances."""
    d, lp, _ = _engine(formula, _crossed(), True)
    assert lp._weighted_scalar() is not None
    rng = np.random.default_rng(4)
    w = rng.uniform(0.3, 2.0, lp.n)
    theta = rng.uniform(0.4, 1.3, lp.n_theta)
    fac, sol = _weighted_equals_dense(d, lp, theta, w)
    sol_u = fac.solve_u(d.y - d.X @ sol.beta)
    np.testing.assert_allclose(sol_u.u, sol.u, rtol=1e-8, atol=1e-10)
    general = LinearPredictor(d.X, d.terms)
    general._wscalar = False  # force the general path
    gfac = general.factorize(theta, sqrtw=np.sqrt(w))
    assert gfac.ldRX2 == pytest.approx(fac.ldRX2, rel=1e-12)
    np.testing.assert_allclose(fac.RX, gfac.RX, rtol=1e-10)
    for a, b in zip(fac.condvar_blocks(), gfac.condvar_blocks(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10)


def test_zlambda_matrix_argument():
    _, lp, _ = _engine("y ~ x + (1 + x | a) + (1 | b)", _crossed(), True)
    theta = np.array([0.8, 0.2, 0.5, 1.1])
    U = np.random.default_rng(0).normal(size=(lp.q, 3))
    out = lp.zlambda(theta, U)
    assert out.shape == (lp.n, 3)
    np.testing.assert_allclose(out[:, 1], lp.zlambda(theta, U[:, 1]))


def test_result_contract_methods():
    data = _crossed()
    m = mh.lmer("y ~ x + (1 + x | a) + (1 | b)", data)
    assert m.n_theta == 4 and m.converged is True
    assert m.sol.u.shape == (m.predictor.q,) and m.sol.b.shape == (m.predictor.q,)
    at = m._pls_at(m.sol.theta)
    assert at.deviance(True) == pytest.approx(m.reml_criterion, rel=1e-12)
    np.testing.assert_allclose(m._zlambda(m.sol.theta, m.sol.u), m.fitted - m.design.X @ m.sol.beta, atol=1e-10)
    # _refit with the same y reproduces the fit; with a new y equals a fresh lmer
    again = m._refit()
    assert again.reml_criterion == pytest.approx(m.reml_criterion, rel=1e-10)
    y2 = data.y.to_numpy() * 2 + 1
    r2 = m._refit(y=y2, REML=False)
    fresh = mh.lmer("y ~ x + (1 + x | a) + (1 | b)", data.assign(y=y2), REML=False)
    assert r2.deviance == pytest.approx(fresh.deviance, rel=1e-9)
    np.testing.assert_allclose(r2.theta, fresh.theta, rtol=1e-5, atol=1e-7)
    rX = m._refit(X=m.design.X[:, :1])
    assert list(rX.fixef.index) == ["X1"]


def test_theta_ordering_is_lme4s():
    # lme4: for a 2 x 2 block theta = (lambda11, lambda21, lambda22); || gives two 1 x 1 blocks.
    t = ThetaMap(2, [(0, 2, True)])
    assert list(zip(t.rows, t.cols, strict=True)) == [(0, 0), (1, 0), (1, 1)]
    t2 = ThetaMap(2, [(0, 1, False), (1, 2, False)])
    assert list(zip(t2.rows, t2.cols, strict=True)) == [(0, 0), (1, 1)]


def test_canonical_theta_keeps_covariance():
    tmap = ThetaMap(2, [(0, 2, True)])
    theta = np.array([-1.2, 0.4, -0.3])
    can = tmap.canonical(theta)
    assert np.all(can[tmap.is_diag] >= 0)
    L1, L2 = tmap.Lambda(theta), tmap.Lambda(can)
    np.testing.assert_allclose(L1 @ L1.T, L2 @ L2.T)


SCALAR_CROSSED = [
    ("y ~ x + (1 | a) + (1 | b)", _crossed),
    ("y ~ x + f + (1 | a) + (1 | b) + (1 | a:b)", _crossed),
    ("y ~ x + (1 | a) + (1 | b:a)", _nested),
]


#: RowOuterProducts' split of C's rows: all by pairs, all dense (syrk), and the default mix.
HEAVY_FRACTIONS = [1e9, 0.0, 0.1]


@pytest.mark.parametrize("fraction", HEAVY_FRACTIONS)
def test_row_outer_products_equal_the_dense_product(fraction, monkeypatch):
    import scipy.sparse as sp

    import mlmhelpers.predictor as predictor

    monkeypatch.setattr(predictor, "_HEAVY_ROW_FRACTION", fraction)
    rng = np.random.default_rng(3)
    q1, qr = 80, 30
    dense = np.where(rng.random((q1, qr)) < np.linspace(0.02, 0.6, q1)[:, None], rng.integers(1, 4, (q1, qr)), 0)
    dense[5] = 0  # an empty row
    C = sp.csr_matrix(dense.astype(float))
    rop = predictor.RowOuterProducts.build(C)
    if fraction == 1e9:
        assert rop.heavy.size == 0
    elif fraction == 0.0:  # every row with two or more non-zeros is dense: the rest pair with themselves
        assert rop.heavy.size > 0 and np.array_equal(rop.idx // qr, rop.idx % qr)
    else:
        assert 0 < rop.heavy.size < q1 and rop.idx.size > 0
    for _ in range(3):
        d = rng.uniform(0, 2, q1)
        M = rop.lower(d)
        ref = C.T.toarray() @ np.diag(d) @ C.toarray()
        np.testing.assert_allclose(np.tril(M), np.tril(ref), rtol=1e-12, atol=1e-12)
        assert not np.triu(M, 1).any() and M.flags.f_contiguous


def test_row_outer_products_refuse_too_many_pairs(monkeypatch):
    import scipy.sparse as sp

    import mlmhelpers.predictor as predictor

    monkeypatch.setattr(predictor, "_HEAVY_ROW_FRACTION", 1e9)
    monkeypatch.setattr(predictor, "_PAIRS_MAX", 10)
    assert predictor.RowOuterProducts.build(sp.csr_matrix(np.ones((3, 4)))) is None  # 3 rows × 10 pairs


@pytest.mark.parametrize("fraction", HEAVY_FRACTIONS)
@pytest.mark.parametrize("formula,make", SCALAR_CROSSED)
@pytest.mark.parametrize("reml", [True, False])
def test_scalar_terms_pairs_path_and_exact_gradient(formula, make, reml, fraction, monkeypatch):
    """Scalar terms on the precomputed-pairs path: same criterion as the definition; exact gradient."""
    import mlmhelpers.predictor as predictor

    monkeypatch.setattr(predictor, "_DENSE_CROSS_MAX", 0)  # force the sparse off-diagonal block
    monkeypatch.setattr(predictor, "_HEAVY_ROW_FRACTION", fraction)
    d, lp, resp = _engine(formula, make(), reml)
    assert lp._crossproducts(None).pairs is not None and resp.exact_gradient
    rng = np.random.default_rng(7)
    thetas = [_random_theta(lp, rng) for _ in range(2)]
    thetas.append(np.r_[thetas[0][:-1], 0.0])  # a zero variance
    thetas.append(np.r_[0.0, thetas[1][1:]])
    for theta in thetas:
        ref = dense_multi(theta, d.y, d.X, d.terms, reml)
        sol = resp.pls(theta)
        assert sol.deviance(reml) == pytest.approx(ref["criterion"], rel=1e-10)
        np.testing.assert_allclose(sol.b, ref["b"], rtol=1e-8, atol=1e-10)
        f, grad = resp.objective_and_gradient(theta)
        assert f == pytest.approx(ref["criterion"], rel=1e-10)
        # central differences (at a zero θ_i the criterion is even in θ_i: derivative 0)
        num = np.empty_like(grad)
        for i in range(theta.size):
            e = np.zeros(theta.size)
            e[i] = 1e-6
            num[i] = (resp.objective(theta + e) - resp.objective(theta - e)) / 2e-6
        np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("formula,make", SCALAR_CROSSED)
def test_scalar_terms_exact_gradient_fit_equals_default_fit(formula, make, monkeypatch):
    import mlmhelpers.predictor as predictor

    data = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = mh.lmer(formula, data)
        monkeypatch.setattr(predictor, "_DENSE_CROSS_MAX", 0)
        m = mh.lmer(formula, data)
    assert m.response.exact_gradient and not ref.response.exact_gradient
    # The pairs path starts with Newton's method (average information); the last model is
    # singular (a zero variance), where Newton gives up and the bounded L-BFGS-B search finishes.
    assert m.opt.optimizers[0] == "Newton (average information)" and m.opt.converged
    assert ("L-BFGS-B" in m.opt.optimizers) == ref.is_singular
    assert m.reml_criterion == pytest.approx(ref.reml_criterion, rel=1e-9)
    np.testing.assert_allclose(m.theta, ref.theta, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m.fixef, ref.fixef, rtol=1e-6, atol=1e-8)


def _dense_projection(lp, theta):
    """P = V⁻¹ − V⁻¹X(XᵀV⁻¹X)⁻¹XᵀV⁻¹ with V = I + Σ θ_t² Z_t Z_tᵀ, from the definition."""
    V = np.eye(lp.n)
    for t, th in zip(lp.terms, theta, strict=True):
        Z = dense_Z(t.Z, t.codes, t.nlevels)
        V += th**2 * Z @ Z.T
    Vi = np.linalg.inv(V)
    X = lp.X
    return Vi - Vi @ X @ np.linalg.solve(X.T @ Vi @ X, X.T @ Vi)


@pytest.mark.parametrize("formula,make", SCALAR_CROSSED)
@pytest.mark.parametrize("reml", [True, False])
def test_residual_and_average_information_equal_their_definitions(formula, make, reml, monkeypatch):
    import mlmhelpers.predictor as predictor

    monkeypatch.setattr(predictor, "_DENSE_CROSS_MAX", 0)
    d, lp, resp = _engine(formula, make(), reml)
    theta = _random_theta(lp, np.random.default_rng(11))
    P = _dense_projection(lp, theta)
    v = np.random.default_rng(2).normal(size=lp.n)
    np.testing.assert_allclose(lp.factorize(theta).residual(v), P @ v, rtol=1e-9, atol=1e-10)
    f, g, H = resp.objective_gradient_information(theta)
    f_ref, g_ref = resp.objective_and_gradient(theta)
    assert f == f_ref and np.array_equal(g, g_ref)
    # H = (m / r²)(w_sᵀ P w_t − c_s c_t / r²), w_t = Z_t Z_tᵀ P y, c_t = yᵀ P w_t, r² = yᵀ P y.
    e = P @ d.y
    r2 = d.y @ e
    W = [dense_Z(t.Z, t.codes, t.nlevels) @ (dense_Z(t.Z, t.codes, t.nlevels).T @ e) for t in lp.terms]
    c = np.array([w @ e for w in W])
    m = lp.n - lp.p if reml else lp.n
    ref = m / r2 * (np.array([[a @ P @ b for b in W] for a in W]) - np.outer(c, c) / r2)
    np.testing.assert_allclose(H, ref, rtol=1e-8, atol=1e-10)
    assert np.linalg.eigvalsh(H).min() > -1e-10 * np.abs(H).max()  # positive semi-definite


def test_moment_start_is_near_the_reml_estimate(monkeypatch):
    """One-way moment estimates start the crossed Newton search close to the optimum."""
    rng = np.random.default_rng(4)
    n, na, nb = 6000, 150, 60
    a, b = rng.integers(0, na, n), rng.integers(0, nb, n)
    y = 1.0 + rng.normal(0, 0.6, na)[a] + rng.normal(0, 0.9, nb)[b] + rng.normal(0, 1.0, n)
    data = pd.DataFrame({"y": y, "a": a, "b": b})
    import mlmhelpers.predictor as predictor

    monkeypatch.setattr(predictor, "_DENSE_CROSS_MAX", 0)  # the large-model path, on a small model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mh.lmer("y ~ 1 + (1 | a) + (1 | b)", data)
    assert m.response.has_information
    start = m.response.moment_start()
    np.testing.assert_allclose(start, m.theta.to_numpy(), rtol=0.15)
    assert m.opt.optimizers == ["Newton (average information)"] and m.opt.converged
