"""The GLM response of a generalized linear mixed model: PIRLS, Laplace and AGQ.

This is the GLMM half of lme4's predictor/response split (lme4's ``glmResp``
next to ``lmResp``; MixedModels.jl's ``GeneralizedLinearMixedModel`` around a
``LinearMixedModel``). Everything about the linear predictor ``η = o + Xβ +
ZΛ_θu`` (the offset ``o``, the blocked Cholesky factor, the penalised
least-squares solves) comes from a predictor object with the engine's
interface (CONTRACT §1):

* ``pred.factorize(theta, sqrtw)`` → a factorization with ``ldL2``,
  ``solve(y)`` (β and u jointly) and ``solve_u(y)`` (u only), each returning
  a PLS solution with fields ``beta``, ``u``, ``RX``;
* ``pred.zlambda(theta, u)`` → ``ZΛ_θu``.

Here live only the response-side pieces: the family, μ, the IRLS weights and
working response, the penalised iteratively reweighted least squares (PIRLS)
loop with step-halving, the Laplace approximation of the deviance and, for a
single scalar random effect, adaptive Gauss–Hermite quadrature (AGQ).

References: Bates, Mächler, Bolker & Walker (2015), *J. Stat. Softw.* 67(1),
section 5 and lme4's ``src/respModule.cpp``/``external.cpp``; MixedModels.jl
``src/generalizedlinearmixedmodel.jl``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import logsumexp

from .family import Family

__all__ = ["GLMResponse", "PIRLSError", "PIRLSResult", "pirls", "laplace_deviance", "laplace_gradient",
           "LaplaceDerivatives", "moment_theta", "agq_deviance", "gh_rule"]


class PIRLSError(RuntimeError):
    """PIRLS could not find the conditional modes (step-halving failed or η diverged)."""


class GLMResponse:
    """Response vector, prior weights, offset and family; μ and weights at the current η.

    Parameters
    ----------
    y : ndarray (n,)
        The response: 0/1 or proportions (binomial), counts (Poisson).
    family : Family
    weights : ndarray (n,), optional
        Prior weights (for a binomial response, the numbers of trials).
    offset : ndarray (n,), optional
    """

    def __init__(self, y: np.ndarray, family: Family, weights: np.ndarray | None = None,
                 offset: np.ndarray | None = None) -> None:
        self.y = np.asarray(y, dtype=float)
        n = self.y.shape[0]
        self.family = family
        self.pw = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
        self.offset = np.zeros(n) if offset is None else np.asarray(offset, dtype=float)
        self.n = n
        # −2 log p(y | μ) = dev.resid(y, μ) + (−2 log p(y | μ = y)): the saturated constant, once.
        with np.errstate(divide="ignore", invalid="ignore"):
            self.c_sat = family.loglik_terms(self.y, self.y, self.pw)
            self._k_sat = family.kernel(self.y, self.y)
        self._2pw = 2.0 * self.pw

    def start_eta(self) -> np.ndarray:
        """η from R's ``mustart`` (family ``initialize``)."""
        return self.family.linkfun(self.family.mustart(self.y, self.pw))

    def update(self, eta: np.ndarray) -> ResponseState:
        """μ, dμ/dη, IRLS weights, working residual and deviance residuals at ``eta``."""
        fam = self.family
        mu, mu_eta = fam.linkinv_and_mu_eta(eta)
        sqrtw = mu_eta * np.sqrt(self.pw / fam.variance(mu))
        wres = (self.y - mu) / mu_eta  # working residual
        devres = self._2pw * (self._k_sat - fam.kernel_inside(self.y, mu))  # = fam.dev_resids(y, mu, pw)
        return ResponseState(eta=eta, mu=mu, mu_eta=mu_eta, sqrtw=sqrtw, wres=wres, devres=devres)

    def aic_terms(self, mu: np.ndarray) -> np.ndarray:
        """−2 log p(yᵢ | μᵢ) (weighted), per observation: R's family ``aic`` terms."""
        return self.family.dev_resids(self.y, mu, self.pw) + self.c_sat


@dataclass
class ResponseState:
    eta: np.ndarray
    mu: np.ndarray
    mu_eta: np.ndarray
    sqrtw: np.ndarray
    wres: np.ndarray
    devres: np.ndarray

    @property
    def dev(self) -> float:
        return float(self.devres.sum())


def _amax(v: np.ndarray) -> float:
    """max |vᵢ| (0 for an empty vector), without ``np.max``'s Python-level overhead."""
    return float(np.abs(v).max()) if v.size else 0.0


class PIRLSResult:
    """The conditional modes at one (θ, β) and what the deviance needs.

    Attributes
    ----------
    theta, beta, u : ndarray
    state : ResponseState
        μ, IRLS weights, deviance residuals at the modes.
    ldL2 : float
        ``log |L_θ|²`` at the IRLS weights of the modes.
    pdev : float
        Penalised deviance ``Σ dev.resids + ‖u‖²``.
    iterations : int
    fac
        The predictor's factorization at the modes' weights (computed on
        first use): ``RX``, ``condvar_blocks()``.
    """

    def __init__(self, pred, theta, beta, u, state, ldL2, pdev, iterations, fac=None):
        self.pred, self.theta, self.beta, self.u, self.state = pred, theta, beta, u, state
        self.ldL2, self.pdev, self.iterations, self._fac = ldL2, pdev, iterations, fac

    @property
    def fac(self):
        if self._fac is None:
            self._fac = self.pred.factorize(self.theta, self.state.sqrtw)
        return self._fac


def _eta(pred, X, resp: GLMResponse, theta, beta, u) -> np.ndarray:
    return resp.offset + X @ beta + pred.zlambda(theta, u)


def _scalar_term(pred):
    """The single scalar random-effects term of ``pred``, or None."""
    terms = getattr(pred, "terms", None)
    if terms is not None and len(terms) == 1 and terms[0].Z.shape[1] == 1:
        return terms[0]
    return None


def _scalar_joint_solve(X, XtX_rows, dz, term, w, z):
    """The joint weighted PLS solve for one scalar term (``L_θ`` diagonal), β and u.

    With ``aᵢ = (ZΛ)ᵢ``, ``L_j² = 1 + Σ_{i∈j} wᵢaᵢ²``, ``c_j = Σ wᵢaᵢzᵢ`` and
    ``C_j = Σ wᵢaᵢxᵢ``: β solves ``(XᵀWX − Σ_j C_jC_jᵀ/L_j²) β = XᵀWz − Σ_j C_j c_j/L_j²``
    and ``u_j = (c_j − C_jᵀβ) / L_j²`` (the Schur complement of the blocked system).
    """
    p = X.shape[1]
    wdz = w * dz
    L2 = 1.0 + term.sum_by_level(wdz * dz)
    c = term.sum_by_level(wdz * z)
    C = term.sum_by_level(X.T * wdz).T  # X.T is row-major when X is column-major (formulaic's)
    XtWX = (w @ XtX_rows).reshape(p, p) if XtX_rows is not None else X.T @ (w[:, None] * X)
    Cs = C / np.sqrt(L2)[:, None]
    schur = XtWX - Cs.T @ Cs
    rhs = X.T @ (w * z) - C.T @ (c / L2)
    beta = np.linalg.solve(schur, rhs)
    return beta, (c - C @ beta) / L2


def pirls(pred, X: np.ndarray, resp: GLMResponse, theta: np.ndarray, beta: np.ndarray,
          u0: np.ndarray | None = None, *, u_only: bool = True, tol: float = 1e-12, step_tol: float = 1e-9,
          maxit: int = 200, max_halvings: int = 30, fast: bool = True,
          x_outer: np.ndarray | None = None) -> PIRLSResult:
    """Penalised iteratively reweighted least squares for the conditional modes.

    Minimises the penalised deviance ``Σ dev.resids(y, μ) + ‖u‖²`` over u
    (``u_only=True``, lme4's second stage, β fixed) or over (β, u) jointly
    (``u_only=False``, lme4's ``nAGQ = 0`` first stage). Each iteration
    solves the weighted PLS problem at the current IRLS weights for the new
    (β,) u; if the penalised deviance does not decrease, the step towards it
    is halved (up to ``max_halvings`` times), as lme4's ``pwrssUpdate``.
    Converged when the relative decrease of the penalised deviance is below
    ``tol`` (lme4: 1e-7) and the last step moved no (β,) u by more than
    ``step_tol``: tighter than lme4, so that the deviance is smooth enough
    for finite-difference derivatives.

    The weighted PLS solves are the predictor's (``factorize(θ, √w)``,
    ``solve``/``solve_u``). One case is solved here directly: u only, with a
    single scalar random-effects term, where ``L_θ`` is diagonal and the PLS
    problem separates into one scalar equation per level,
    ``u_j = λ Σ_{i∈j} wᵢ zᵢ rᵢ / (1 + λ² Σ_{i∈j} wᵢ zᵢ²)``; this is the bulk
    of a glmer fit's work and avoids the general factorization's overhead.
    The joint (β, u) solve of a single scalar term is likewise done with
    per-level sums (:func:`_scalar_joint_solve`). ``fast=False`` uses the
    predictor in every case; tests check both paths against a dense solve.
    ``x_outer`` (:func:`x_outer_rows` of ``X``) saves recomputing the rows'
    outer products that the joint scalar solve uses, when a caller fits the
    same ``X`` many times.

    Raises
    ------
    PIRLSError
        If step-halving cannot reduce the penalised deviance or η becomes
        non-finite, with a message saying so.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        return _pirls(pred, X, resp, np.asarray(theta, dtype=float), np.asarray(beta, dtype=float).copy(),
                      u0, u_only, tol, step_tol, maxit, max_halvings, fast, x_outer)


_X_OUTER_MAX = 4_000_000  # n·p² above which XᵀWX is a matrix product instead (32 MB)


def x_outer_rows(X: np.ndarray) -> np.ndarray | None:
    """Each row's outer product ``xᵢxᵢᵀ``, flattened (n × p²): ``w @ x_outer_rows(X)`` is ``XᵀWX`` by one
    matrix-vector product (no BLAS-3 call, which OpenBLAS may thread for tiny p). None when it
    would take more than 32 MB."""
    n, p = X.shape
    return np.einsum("ni,nj->nij", X, X).reshape(n, -1) if n * p * p <= _X_OUTER_MAX else None


def _pirls(pred, X, resp, theta, beta, u0, u_only, tol, step_tol, maxit, max_halvings, fast,
           x_outer=None) -> PIRLSResult:
    u = np.zeros(pred.q) if u0 is None else np.asarray(u0, dtype=float).copy()
    term = _scalar_term(pred) if fast else None
    if term is not None:
        codes = term.codes
        dz = float(pred.Lambdas(theta)[0][0, 0]) * term.Z[:, 0]  # ∂η/∂u_j for row i of level j
        dz2 = dz * dz
        fixed = resp.offset + X @ beta
        if not u_only:
            XtX_rows = x_outer_rows(X) if x_outer is None else x_outer

        def eta_of(b, uu):
            return (fixed if u_only else resp.offset + X @ b) + dz * uu[codes]
    else:
        def eta_of(b, uu):
            return resp.offset + X @ b + pred.zlambda(theta, uu)

    state = resp.update(eta_of(beta, u))
    pdev = state.dev + float(u @ u)
    flat, last_change, final_fac = 0, np.inf, None
    if not np.isfinite(pdev):
        raise PIRLSError("PIRLS: the penalised deviance is not finite at the starting values "
                         "(η overflowed); the model may be badly specified or the data separated.")
    for it in range(1, maxit + 1):
        z = state.eta - resp.offset + state.wres  # working response, offset removed
        if term is not None and u_only:
            wdz = state.sqrtw ** 2 * dz
            new_u = term.sum_by_level(wdz * (z - fixed + resp.offset)) / (1.0 + term.sum_by_level(wdz * dz))
            new_beta = beta
        elif term is not None:
            new_beta, new_u = _scalar_joint_solve(X, XtX_rows, dz, term, state.sqrtw ** 2, z)
        else:
            fac = pred.factorize(theta, state.sqrtw)
            if u_only:
                sol = fac.solve_u(z - X @ beta)
                new_beta, new_u = beta, sol.u
            else:
                sol = fac.solve(z)
                new_beta, new_u = sol.beta, sol.u
        d_beta, d_u = new_beta - beta, new_u - u
        if term is None and it > 1 and last_change <= tol * (abs(pdev) + 0.1):
            proposed = max(_amax(d_u), _amax(d_beta))
            if proposed < 0.1 * step_tol:
                # Converged before this step: the factorization just made is at the modes'
                # weights (to 1e-10), so it gives log|L|² without another factorization.
                final_fac = fac
                break
        step = 1.0
        for _ in range(max_halvings + 1):
            b_try = beta + step * d_beta if not u_only else beta
            u_try = u + step * d_u
            st = resp.update(eta_of(b_try, u_try))
            pd_try = st.dev + float(u_try @ u_try)
            if np.isfinite(pd_try) and pd_try <= pdev + 1e-12 * (abs(pdev) + 1.0):  # rounding noise allowed
                break
            step *= 0.5
        else:
            raise PIRLSError(
                f"PIRLS step-halvings failed to reduce the penalised deviance (iteration {it}, "
                f"penalised deviance {pdev:.6g}): the conditional modes could not be found at "
                f"theta = {np.round(theta, 6).tolist()}. Often a sign of (quasi-)complete separation "
                "or of a model too complex for the data."
            )
        change = last_change = pdev - pd_try
        beta, u, state, pdev = b_try, u_try, st, pd_try
        moved = step * (_amax(d_u) if u_only else
                        max(_amax(d_u), _amax(d_beta)))
        # Both the penalised deviance and the modes must settle: log|L|² (in the Laplace
        # deviance) depends on the modes to first order, so a slowly converging PIRLS
        # (non-canonical links: Fisher scoring) must not stop on a small decrease alone.
        if (change <= tol * (abs(pdev) + 0.1) and moved < step_tol) or moved < 1e-14:
            break
        # The deviance no longer changes at all while the modes still drift: a flat direction
        # (separation, μ at its bounds). Stop; glmer() warns about fitted probabilities of 0 or 1.
        flat = flat + 1 if change <= 1e-15 * (abs(pdev) + 1.0) else 0
        if flat >= 3:
            break
    else:
        raise PIRLSError(f"PIRLS did not converge in {maxit} iterations at theta = {np.round(theta, 6).tolist()}.")
    if term is not None:
        L2 = 1.0 + term.sum_by_level(state.sqrtw ** 2 * dz2)
        return PIRLSResult(pred, theta, beta, u, state, float(np.sum(np.log(L2))), pdev, it)
    fac = final_fac if final_fac is not None else pred.factorize(theta, state.sqrtw)
    return PIRLSResult(pred, theta, beta, u, state, fac.ldL2, pdev, it, fac=fac)


def laplace_deviance(resp: GLMResponse, fit: PIRLSResult) -> float:
    """The Laplace approximation to −2 log-likelihood at the modes.

    ``−2 Σ log p(yᵢ | μᵢ) + ‖u‖² + log|L_θ|²`` with the IRLS (Fisher) weights
    at the modes, lme4's ``glmResp::Laplace``.
    """
    return float(fit.pdev + np.sum(resp.c_sat) + fit.ldL2)


def moment_theta(pred, X: np.ndarray, resp: GLMResponse, beta: np.ndarray) -> float | None:
    """A moment estimate of θ for one scalar random-effects term, from the GLM fit at ``beta``.

    On the working scale of the GLM without random effects, level ``j``'s
    weighted mean working residual ``b_j = Σ wᵢzᵢrᵢ / S_j`` (``S_j = Σ wᵢzᵢ²``)
    estimates its random effect with sampling variance ``1/S_j``, so
    ``mean(b_j² − 1/S_j)`` estimates the random effects' variance, which is
    θ² in a GLMM (no scale parameter). Only a start for the first stage
    (within ~40 % of the estimate on the course's data sets). None if the
    model is not a single scalar term.
    """
    term = _scalar_term(pred)
    if term is None:
        return None
    st = resp.update(resp.offset + X @ beta)
    z = term.Z[:, 0]
    wz = st.sqrtw * st.sqrtw * z
    S = term.sum_by_level(wz * z)
    used = S > 0
    if not used.any():
        return None
    b = term.sum_by_level(wz * st.wres)[used] / S[used]
    s2 = float(np.mean(b * b - 1.0 / S[used]))
    return float(np.sqrt(s2)) if np.isfinite(s2) and s2 > 0 else 0.0


@dataclass
class LaplaceDerivatives:
    """Exact derivatives of the Laplace deviance at one PIRLS solution (:func:`laplace_gradient`)."""

    grad: np.ndarray  # over (θ, β), β fixed (lme4's second stage)
    du: np.ndarray  # the modes' derivatives du/d(θ, β), J × (1 + p)
    profiled: float | None  # d/dθ with β at its PIRLS optimum (lme4's first stage), if asked for


def laplace_gradient(pred, X: np.ndarray, resp: GLMResponse, fit: PIRLSResult, *,
                     profiled: bool = False) -> LaplaceDerivatives | None:
    """The exact gradient of the Laplace deviance over ``(θ, β)``, one random-effects term.

    For a vector-valued term (``(1 + x | g)``) see :func:`_laplace_gradient_block`
    (the same formulas with k × k blocks per level; ``profiled`` is not
    available there). Below, the scalar case.

    The Laplace deviance of lme4's second stage is, with ``aᵢ = θzᵢ`` and
    ``ηᵢ = oᵢ + xᵢᵀβ + aᵢu_j`` for row ``i`` in level ``j``,
    ``f(θ, β) = Σᵢ dᵢ(ηᵢ) + Σ_j u_j² + Σ_j log L_j² + const``,
    ``L_j² = 1 + Σ_{i∈j} wᵢ(ηᵢ)aᵢ²``, where ``dᵢ`` are the deviance
    residuals, ``wᵢ = pwᵢ μ'ᵢ²/V(μᵢ)`` the IRLS weights and ``u`` the
    conditional modes. Its derivative along a parameter ``t`` is

    ``df/dt = Σᵢ dᵢ' ∂ηᵢ/∂t + Σ_j s_j du_j/dt + Σ_j (1/L_j²) Σ_{i∈j} (wᵢ' aᵢ² dηᵢ/dt + wᵢ ∂aᵢ²/∂t)``,

    where ``∂ηᵢ/∂t`` is taken at fixed ``u`` (``xᵢ`` for β, ``zᵢu_j`` for θ),
    ``dηᵢ/dt = ∂ηᵢ/∂t + aᵢ du_j/dt``, ``s_j = Σ_{i∈j} dᵢ'aᵢ + 2u_j`` is the
    gradient of the penalised deviance in ``u_j`` (zero at exact modes; kept so
    that the result is the derivative of the deviance actually evaluated),
    and ``du_j/dt = −G_jt / H_j`` with ``G_jt = Σ_{i∈j} dᵢ''aᵢ ∂ηᵢ/∂t + [t = θ] Σ_{i∈j} dᵢ'zᵢ``
    and ``H_j = 2 + Σ_{i∈j} dᵢ''aᵢ²``, by implicit differentiation of ``s_j = 0``.
    ``d'``, ``d''`` and ``w'`` (derivatives in η) need the link's
    ``mu_eta_deriv`` and the family's ``variance_deriv``. Collecting terms,
    ``df/dt = Σᵢ vᵢ ∂ηᵢ/∂t − [t = θ] Σ_j (q_j/H_j) Σ_{i∈j} dᵢ'zᵢ + [t = θ] Σᵢ 2aᵢzᵢwᵢ/L_j²``
    with ``cᵢ = wᵢ'aᵢ²/L_j²``, ``q_j = s_j + Σ_{i∈j} cᵢaᵢ`` and
    ``vᵢ = dᵢ' + cᵢ − (q_j/H_j) dᵢ''aᵢ``: a few sums over the rows, about
    the cost of one PIRLS iteration (a central-difference gradient costs
    ``2(1 + p)`` PIRLS solves).

    ``profiled=True`` also gives the derivative along θ of lme4's first-stage
    criterion, where β is the penalised-deviance optimum ``β̂(θ)`` found by
    PIRLS with u: ``df/dθ + ∇_β f · dβ̂/dθ`` with
    ``dβ̂/dθ = −S⁻¹ Σᵢ dᵢ''xᵢ dηᵢ/dθ`` and
    ``S = Σᵢ dᵢ''xᵢxᵢᵀ − Σ_j G_jβ G_jβᵀ / H_j`` (the Hessian of the penalised
    deviance in β with u following).

    Returns
    -------
    LaplaceDerivatives or None
        None when the model has several terms or some ``μ`` sits
        at R's guards (``μ'`` clamped, where the deviance is not smooth);
        the caller then uses finite differences.
    """
    terms = getattr(pred, "terms", None)
    if terms is None or len(terms) != 1:
        return None
    st = fit.state
    if np.any(st.mu_eta <= 2.0 * np.finfo(float).eps):
        return None
    if terms[0].k > 1:
        return _laplace_gradient_block(X, resp, fit, terms[0])
    term, fam = terms[0], resp.family
    codes = term.codes
    z = term.Z[:, 0]
    lam = float(pred.Lambdas(fit.theta)[0][0, 0])  # = θ for a scalar term
    a = lam * z
    mu, me = st.mu, st.mu_eta
    V = fam.variance(mu)
    me2 = fam.link.mu_eta_deriv(st.eta)
    dV_V = fam.variance_deriv(mu) / V
    pw_r_V = resp.pw * (resp.y - mu) / V
    w = st.sqrtw * st.sqrtw  # = pw μ'² / V
    d1 = -2.0 * pw_r_V * me
    d2 = 2.0 * w - 2.0 * pw_r_V * (me2 - me * me * dV_V)
    w1 = w * (2.0 * me2 / me - me * dV_V)
    u = fit.u
    e0 = z * u[codes]  # ∂η/∂θ at fixed u
    aa = a * a
    d2a = d2 * a
    p = X.shape[1]
    inv_L2 = 1.0 / (1.0 + term.sum_by_level(w * aa))[codes]
    H = 2.0 + term.sum_by_level(d2 * aa)
    b1 = term.sum_by_level(d1 * z)
    G = np.empty((len(H), 1 + p))
    G[:, 0] = term.sum_by_level(d2a * e0) + b1
    G[:, 1:] = term.sum_by_level(X.T * d2a).T
    du = -G / H[:, None]
    c = w1 * aa * inv_L2
    q_H = (lam * b1 + 2.0 * u + term.sum_by_level(c * a)) / H
    v = d1 + c - q_H[codes] * d2a
    grad = np.empty(1 + p)
    grad[0] = v @ e0 - q_H @ b1 + 2.0 * float(np.sum(a * z * w * inv_L2))
    grad[1:] = v @ X
    prof = None
    if profiled:
        Gb = G[:, 1:]
        S = X.T @ (d2[:, None] * X) - (Gb / H[:, None]).T @ Gb
        rhs = (d2 * (e0 + a * du[codes, 0])) @ X
        try:
            prof = float(grad[0] - grad[1:] @ np.linalg.solve(S, rhs))
        except np.linalg.LinAlgError:
            prof = None
    return LaplaceDerivatives(grad=grad, du=du, profiled=prof)


def _level_matrices(term, values: np.ndarray) -> np.ndarray:
    """Level sums of per-row (k × k) or (k × d) matrices, (n, a, b) → (J, a, b)."""
    n, a, b = values.shape
    return term.sum_by_level(values.reshape(n, a * b).T).T.reshape(term.nlevels, a, b)


def _laplace_gradient_block(X: np.ndarray, resp: GLMResponse, fit: PIRLSResult, term) -> LaplaceDerivatives:
    """:func:`laplace_gradient` for one vector-valued term (k > 1 random effects per level).

    With ``aᵢ = Λᵀzᵢ`` (k-vectors), ``ηᵢ = oᵢ + xᵢᵀβ + aᵢᵀu_j``,
    ``M_j = I + Σ_{i∈j} wᵢaᵢaᵢᵀ`` (the level's block of ``L Lᵀ``) and
    ``H_j = 2I + Σ_{i∈j} dᵢ''aᵢaᵢᵀ``, the scalar formulas hold with matrices:
    ``du_j/dt = −H_j⁻¹ G_jt``, ``G_jt = Σ_{i∈j} dᵢ''aᵢ ∂ηᵢ/∂t + [t = θ_r] Σ_{i∈j} dᵢ' ∂aᵢ/∂θ_r``,
    and ``df/dt = Σᵢ cᵢ ∂ηᵢ/∂t + [t = θ_r] Σᵢ (2wᵢM_j⁻¹aᵢ − dᵢ'v_j)ᵀ ∂aᵢ/∂θ_r`` with
    ``qᵢ = aᵢᵀM_j⁻¹aᵢ``, ``v_j = H_j⁻¹(s_j + Σ_{i∈j} wᵢ'qᵢaᵢ)`` and
    ``cᵢ = dᵢ' + wᵢ'qᵢ − dᵢ''aᵢᵀv_j``. θ_r is the entry ``(rows_r, cols_r)``
    of Λ, so ``∂ηᵢ/∂θ_r = zᵢ[rows_r] u_j[cols_r]`` at fixed u and
    ``∂aᵢ/∂θ_r = zᵢ[rows_r] e_{cols_r}``.
    """
    fam = resp.family
    st = fit.state
    codes, J, k, tm = term.codes, term.nlevels, term.k, term.tmap
    Z = term.Z
    A = Z @ tm.Lambda(fit.theta)  # row i: aᵢ = Λᵀzᵢ
    mu, me = st.mu, st.mu_eta
    V = fam.variance(mu)
    me2 = fam.link.mu_eta_deriv(st.eta)
    dV_V = fam.variance_deriv(mu) / V
    pw_r_V = resp.pw * (resp.y - mu) / V
    w = st.sqrtw * st.sqrtw
    d1 = -2.0 * pw_r_V * me
    d2 = 2.0 * w - 2.0 * pw_r_V * (me2 - me * me * dV_V)
    w1 = w * (2.0 * me2 / me - me * dV_V)
    U = fit.u.reshape(J, k)
    AA = A[:, :, None] * A[:, None, :]
    eye = np.eye(k)
    M = eye + _level_matrices(term, w[:, None, None] * AA)
    H = 2.0 * eye + _level_matrices(term, d2[:, None, None] * AA)
    MA = np.einsum("nij,nj->ni", np.linalg.inv(M)[codes], A)  # M_j⁻¹ aᵢ
    q = np.einsum("ni,ni->n", A, MA)
    r = term.sum_by_level((d1[:, None] * A).T).T + 2.0 * U + term.sum_by_level(((w1 * q)[:, None] * A).T).T
    v = np.linalg.solve(H, r[:, :, None])[:, :, 0]
    c = d1 + w1 * q - d2 * np.einsum("ni,ni->n", A, v[codes])
    n_theta, p = tm.size, X.shape[1]
    E = np.empty((len(codes), n_theta + p))  # ∂η/∂(θ, β) at fixed u
    E[:, :n_theta] = Z[:, tm.rows] * U[codes][:, tm.cols]
    E[:, n_theta:] = X
    grad = c @ E
    Bv = 2.0 * w[:, None] * MA - d1[:, None] * v[codes]
    grad[:n_theta] += np.einsum("nr,nr->r", Bv[:, tm.cols], Z[:, tm.rows])
    G = _level_matrices(term, (d2[:, None] * A)[:, :, None] * E[:, None, :])
    dA = term.sum_by_level((d1[:, None] * Z[:, tm.rows]).T).T  # (J, n_theta): Σ dᵢ' zᵢ[rows_r]
    G[:, tm.cols, np.arange(n_theta)] += dA
    du = -np.linalg.solve(H, G)
    return LaplaceDerivatives(grad=grad, du=du.reshape(J * k, n_theta + p), profiled=None)


def gh_rule(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Hermite nodes and weights for the standard normal density (lme4's ``GHrule(k)``)."""
    z, w = hermegauss(k)
    return z, w / np.sqrt(2.0 * np.pi)


def agq_deviance(pred, resp: GLMResponse, fit: PIRLSResult, nAGQ: int, codes: np.ndarray, n_levels: int) -> float:
    """Adaptive Gauss–Hermite approximation to −2 log-likelihood (one scalar random effect).

    For each level ``j`` with conditional mode ``û_j`` and ``s_j = 1/L_jj``,
    where ``L_jj² = 1 + Σ_{i∈j} wᵢ (ZΛ)ᵢ²`` is the level's (scalar) block of
    the Cholesky factor at the modes' IRLS weights, the integral
    ``∫ p(y_j | u) φ(u) du`` is approximated by
    ``s_j Σ_k w_k p(y_j | û_j + s_j z_k) φ(û_j + s_j z_k) / φ(z_k)``
    with the ``nAGQ`` Gauss–Hermite nodes ``z_k`` and weights ``w_k`` of the
    standard normal. At ``nAGQ = 1`` this is the Laplace approximation.

    Parameters
    ----------
    codes : ndarray (n,) of int
        Level of each row in the (single) grouping factor.
    n_levels : int
    """
    z, w = gh_rule(nAGQ)
    J = int(n_levels)
    dz = pred.zlambda(fit.theta, np.ones(J))  # (ZΛ)ᵢ: row i's slope in its level's u
    L2 = 1.0 + np.bincount(codes, weights=fit.state.sqrtw ** 2 * dz ** 2, minlength=J)
    s = 1.0 / np.sqrt(L2)
    u0 = fit.u
    eta_nodes = fit.state.eta[:, None] + (dz * s[codes])[:, None] * z[None, :]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        mu_nodes = resp.family.linkinv(eta_nodes)
        terms = resp.family.dev_resids(resp.y[:, None], mu_nodes, resp.pw[:, None]) + resp.c_sat[:, None]
    D = np.empty((J, len(z)))
    for k in range(len(z)):
        D[:, k] = np.bincount(codes, weights=terms[:, k], minlength=J)
    U = u0[:, None] + s[:, None] * z[None, :]
    expo = -0.5 * (D + U ** 2 - z[None, :] ** 2)
    per_group = -2.0 * (np.log(s) + logsumexp(expo, b=w[None, :], axis=1))
    return float(np.sum(per_group))
