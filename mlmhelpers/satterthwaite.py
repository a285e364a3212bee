"""Satterthwaite's degrees of freedom for fixed-effect tests, as lmerTest computes them.

For a contrast ``Lβ`` of a REML (or ML) ``lmer`` fit, the variance of ``Lβ̂``
is ``v(ψ) = L C(ψ) Lᵀ`` with ``C(ψ) = σ² (R_Xᵀ R_X)⁻¹`` the covariance of β̂ as
a function of the variance parameters ``ψ = (θ, σ)``. Satterthwaite's
approximation matches the first two moments of ``v(ψ̂)`` to a scaled χ²:

    df = 2 v(ψ̂)² / (∇v(ψ̂)ᵀ A ∇v(ψ̂)),    A = 2 H⁻¹,

where ``H`` is the Hessian of the deviance (−2 log-likelihood, REML or ML as
fitted) in ``ψ`` with σ *not* profiled out, so that ``A`` is the asymptotic
covariance of ψ̂. Like lmerTest (Kuznetsova, Brockhoff & Christensen 2017,
*J. Stat. Softw.* 82(13)), ``H`` and the Jacobian of ``C`` are computed by
Richardson-extrapolated central differences (numDeriv's method) in the same
``(θ, σ)`` parameterisation; the covariance of β̂ itself is not changed. For
an F test of several contrasts, lmerTest's eigen-decomposition method combines
the Satterthwaite df of the orthogonalised contrasts.

The functions here are internal; the public calls are
:func:`mlmhelpers.contest`, ``m.summary(ddf=...)``, ``tidy(m, ddf=...)`` and
``anova(m)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SatterthwaiteInfo", "satterthwaite_info", "satterthwaite_df_1d", "satterthwaite_f",
           "richardson_jacobian", "richardson_hessian", "fstat_ddf"]

LOG2PI = np.log(2.0 * np.pi)


# ----------------------------------------------------------------- numerical derivatives
def _steps(x: np.ndarray, d: float, eps: float) -> np.ndarray:
    """numDeriv's initial steps: ``d |x|``, or ``eps`` where x is (near) zero."""
    zero_tol = np.sqrt(np.finfo(float).eps / 7e-7)
    return np.abs(d * x) + eps * (np.abs(x) < zero_tol)


def _richardson(estimates: list[np.ndarray]) -> np.ndarray:
    """Extrapolate estimates at steps h, h/2, h/4, ... with an error series in h², h⁴, ..."""
    a = [np.asarray(e, dtype=float) for e in estimates]
    m = 1
    while len(a) > 1:
        a = [(4**m * a[k + 1] - a[k]) / (4**m - 1) for k in range(len(a) - 1)]
        m += 1
    return a[0]


def richardson_jacobian(f, x: np.ndarray, d: float = 1e-4, eps: float = 1e-4, r: int = 4) -> np.ndarray:
    """Jacobian of a vector (or array) valued ``f`` at ``x``; shape ``f(x).shape + (len(x),)``.

    Central differences with ``r`` halvings of numDeriv's step and Richardson
    extrapolation (numDeriv::jacobian, method "Richardson").
    """
    x = np.asarray(x, dtype=float)
    h0 = _steps(x, d, eps)
    cols = []
    for i in range(len(x)):
        ests = []
        for k in range(r):
            h = h0[i] / 2**k
            e = np.zeros_like(x)
            e[i] = h
            ests.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * h))
        cols.append(_richardson(ests))
    return np.stack(cols, axis=-1)


def richardson_hessian(f, x: np.ndarray, d: float = 0.1, eps: float = 1e-4, r: int = 4) -> np.ndarray:
    """Hessian of a scalar ``f`` at ``x`` by extrapolated second differences (as numDeriv::hessian)."""
    x = np.asarray(x, dtype=float)
    k = len(x)
    h0 = _steps(x, d, eps)
    f0 = float(f(x))
    H = np.empty((k, k))
    for i in range(k):
        ests = []
        for s in range(r):
            h = h0[i] / 2**s
            e = np.zeros(k)
            e[i] = h
            ests.append((f(x + e) - 2 * f0 + f(x - e)) / h**2)
        H[i, i] = _richardson(ests)
        for j in range(i):
            ests = []
            for s in range(r):
                hi, hj = h0[i] / 2**s, h0[j] / 2**s
                ei, ej = np.zeros(k), np.zeros(k)
                ei[i], ej[j] = hi, hj
                ests.append((f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4 * hi * hj))
            H[i, j] = H[j, i] = _richardson(ests)
    return H


# ----------------------------------------------------------------- the variance parameters
def deviance_varpar(model, varpar: np.ndarray, reml: bool | None = None) -> float:
    """−2 log-likelihood at ``varpar = (θ, σ)`` with β profiled and σ *not* profiled.

    lmerTest's ``devfun_vp``: ``log|L|² + r²/σ² + n log(2πσ²)``, plus
    ``log|R_X|² − p log(2πσ²)`` for REML.
    """
    reml = model.REML if reml is None else reml
    varpar = np.asarray(varpar, dtype=float)
    s2 = varpar[-1] ** 2
    sol = model._pls_at(varpar[:-1])
    dev = sol.ldL2 + sol.pwrss / s2 + sol.n * (LOG2PI + np.log(s2))
    if reml:
        dev += sol.ldRX2 - sol.p * (LOG2PI + np.log(s2))
    return float(dev)


def covbeta_varpar(model, varpar: np.ndarray) -> np.ndarray:
    """Covariance of β̂, ``σ² (R_Xᵀ R_X)⁻¹``, at ``varpar = (θ, σ)``."""
    varpar = np.asarray(varpar, dtype=float)
    RX = model._pls_at(varpar[:-1]).RX
    RXinv = np.linalg.inv(RX)
    return varpar[-1] ** 2 * RXinv.T @ RXinv


@dataclass(frozen=True)
class SatterthwaiteInfo:
    """What Satterthwaite's method needs, computed once per fit."""

    vcov_beta: np.ndarray  # (p, p)
    vcov_varpar: np.ndarray  # (k, k): 2 H⁻¹ over the positive eigenvalues of H
    jacobian: np.ndarray  # (p, p, k): ∂ C(ψ) / ∂ψ_k
    negative_eigenvalues: int


def satterthwaite_info(model) -> SatterthwaiteInfo:
    """The Hessian of the deviance and the Jacobian of vcov(β̂) in ``(θ, σ)`` (lmerTest's ``as_lmerModLT``)."""
    cached = getattr(model, "_satterthwaite_cache", None)
    if cached is not None:
        return cached
    varpar = np.concatenate([np.asarray(model.sol.theta, dtype=float), [model.sigma]])
    H = richardson_hessian(lambda v: deviance_varpar(model, v), varpar)
    vals, vecs = np.linalg.eigh(H)
    tol = 1e-8
    pos = vals > tol
    Hinv = (vecs[:, pos] / vals[pos]) @ vecs[:, pos].T
    jac = richardson_jacobian(lambda v: covbeta_varpar(model, v), varpar)
    info = SatterthwaiteInfo(vcov_beta=model.vcov.to_numpy(), vcov_varpar=2 * Hinv, jacobian=jac,
                             negative_eigenvalues=int(np.sum(vals < -tol)))
    model._satterthwaite_cache = info  # computed once per fit
    return info


def satterthwaite_df_1d(model, L: np.ndarray) -> tuple[float, float]:
    """``(var(Lβ̂), df)`` for one contrast (lmerTest's ``contest1D``)."""
    info = satterthwaite_info(model)
    L = np.asarray(L, dtype=float)
    var = float(L @ info.vcov_beta @ L)
    grad = np.einsum("i,ijk,j->k", L, info.jacobian, L)
    denom = float(grad @ info.vcov_varpar @ grad)
    return var, 2 * var**2 / denom


def fstat_ddf(nu: np.ndarray, tol: float = 1e-8) -> float:
    """lmerTest's ``get_Fstat_ddf``: combine the df of ``q`` orthogonal contrasts for an F test."""
    nu = np.asarray(nu, dtype=float)
    if nu.size == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(nu.mean())
    if np.any(nu <= 2):
        return 2.0
    E = float(np.sum(nu / (nu - 2)))
    return 2 * E / (E - nu.size)


def satterthwaite_f(model, L: np.ndarray, beta: np.ndarray | None = None,
                    eps: float = np.sqrt(np.finfo(float).eps)) -> dict:
    """F test of ``Lβ = 0`` with Satterthwaite's df (lmerTest's ``contestMD``).

    Returns a dict with ``F``, ``ndf``, ``ddf`` (``ndf`` is the rank of ``L vcov Lᵀ``).
    """
    info = satterthwaite_info(model)
    L = np.atleast_2d(np.asarray(L, dtype=float))
    beta = model.fixef.to_numpy() if beta is None else np.asarray(beta, dtype=float)
    if L.shape[0] == 1:
        var, df = satterthwaite_df_1d(model, L[0])
        return {"F": float((L[0] @ beta) ** 2 / var), "ndf": 1, "ddf": df}
    d, P = np.linalg.eigh(L @ info.vcov_beta @ L.T)
    d, P = d[::-1], P[:, ::-1]  # R's eigen(): decreasing
    tol = max(eps * d[0], 0.0)
    pos = d > tol
    q = int(pos.sum())
    if q == 0:
        raise ValueError("The contrast matrix L has rank 0 for this model's covariance of the fixed effects.")
    PtL = (P.T @ L)[:q]
    if q == 1:
        var, df = satterthwaite_df_1d(model, PtL[0])
        return {"F": float((PtL[0] @ beta) ** 2 / var), "ndf": 1, "ddf": df}
    t2 = (PtL @ beta) ** 2 / d[:q]
    F = float(t2.sum() / q)
    nu = []
    for m in range(q):
        grad = np.einsum("i,ijk,j->k", PtL[m], info.jacobian, PtL[m])
        nu.append(2 * d[m] ** 2 / float(grad @ info.vcov_varpar @ grad))
    return {"F": F, "ndf": q, "ddf": fstat_ddf(np.array(nu))}
