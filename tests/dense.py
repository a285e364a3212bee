"""Independent, deliberately naive computations used as references in tests.

Everything here builds dense n × n matrices straight from the model's
definition (no sufficient statistics, no Cholesky blocks, no profiling
tricks), so it shares no code path with mlmhelpers' engine.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize


def dense_Lambda(theta_blocks, q: int, n_groups: int) -> np.ndarray:
    """Full (q·J) × (q·J) block-diagonal relative covariance factor."""
    lam = np.zeros((q, q))
    rows, cols, vals = theta_blocks
    lam[rows, cols] = vals
    return np.kron(np.eye(n_groups), lam)


def dense_Z(Z: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Expand per-row random-effect columns to the full n × (q·J) matrix."""
    n, q = Z.shape
    full = np.zeros((n, q * n_groups))
    for i in range(n):
        full[i, groups[i] * q:(groups[i] + 1) * q] = Z[i]
    return full


def dense_criterion(theta, rows, cols, y, X, Z, groups, n_groups, reml: bool) -> float:
    """−2 (REML) log-likelihood with σ² profiled out, from V = I + Z Λ Λᵀ Zᵀ."""
    q = Z.shape[1]
    Zf = dense_Z(Z, groups, n_groups)
    lam = dense_Lambda((rows, cols, theta), q, n_groups)
    V = np.eye(len(y)) + Zf @ lam @ lam.T @ Zf.T
    Vinv = np.linalg.inv(V)
    XtVX = X.T @ Vinv @ X
    beta = np.linalg.solve(XtVX, X.T @ Vinv @ y)
    r = y - X @ beta
    quad = r @ Vinv @ r
    n, p = X.shape
    logdetV = np.linalg.slogdet(V)[1]
    if reml:
        s2 = quad / (n - p)
        return logdetV + np.linalg.slogdet(XtVX)[1] + (n - p) * (1 + np.log(2 * np.pi * s2))
    s2 = quad / n
    return logdetV + n * (1 + np.log(2 * np.pi * s2))


def dense_fit_quantities(theta, rows, cols, y, X, Z, groups, n_groups, reml: bool) -> dict:
    """β̂, σ̂, vcov(β̂), BLUPs and their conditional covariances, all dense."""
    q = Z.shape[1]
    n, p = X.shape
    Zf = dense_Z(Z, groups, n_groups)
    lam = dense_Lambda((rows, cols, theta), q, n_groups)
    G = lam @ lam.T  # relative covariance of b
    V = np.eye(n) + Zf @ G @ Zf.T
    Vinv = np.linalg.inv(V)
    XtVX = X.T @ Vinv @ X
    beta = np.linalg.solve(XtVX, X.T @ Vinv @ y)
    r = y - X @ beta
    s2 = (r @ Vinv @ r) / (n - p if reml else n)
    b = G @ Zf.T @ Vinv @ r
    # Conditional covariance of b given y and β̂ (what lme4's condVar reports):
    # σ² (Zᵀ Z + G⁻¹)⁻¹ = σ² (G − G Zᵀ V⁻¹ Z G)
    condvar = s2 * (G - G @ Zf.T @ Vinv @ Zf @ G)
    return {
        "beta": beta,
        "sigma": np.sqrt(s2),
        "vcov": s2 * np.linalg.inv(XtVX),
        "b": b.reshape(n_groups, q),
        "condvar": np.array([condvar[j * q:(j + 1) * q, j * q:(j + 1) * q] for j in range(n_groups)]),
    }


def brute_force_minimum(fun, x0, n_starts: int = 4, seed: int = 0):
    """Minimise ``fun`` with Nelder–Mead from several starts; return (fmin, xmin)."""
    rng = np.random.default_rng(seed)
    best = (np.inf, None)
    starts = [np.asarray(x0, dtype=float)] + [np.asarray(x0) * rng.uniform(0.3, 3, len(x0)) for _ in range(n_starts - 1)]
    for s in starts:
        r = optimize.minimize(fun, s, method="Nelder-Mead",
                              options={"xatol": 1e-9, "fatol": 1e-11, "maxfev": 20000})
        if r.fun < best[0]:
            best = (float(r.fun), r.x)
    return best


# --------------------------------------------------------------------------- #
# Several random-effects terms: Z = all terms side by side, Λ block diagonal.
# --------------------------------------------------------------------------- #


def dense_term_lambda(blocks, k: int, theta) -> np.ndarray:
    """A term's k × k factor from its covariance blocks, θ column-major lower triangle per block."""
    lam = np.zeros((k, k))
    pos = 0
    for start, stop, _ in blocks:
        for c in range(start, stop):
            for r in range(c, stop):
                lam[r, c] = theta[pos]
                pos += 1
    return lam


def dense_multi(theta, y, X, terms, reml: bool, weights=None) -> dict:
    """Everything from V = W⁻¹ + Z Λ Λᵀ Zᵀ (σ² profiled), for a list of terms.

    ``terms`` are objects with ``Z`` (n × k), ``codes``, ``nlevels`` and
    ``blocks``; θ is split across them in order. Returns the criterion, β̂,
    σ̂, vcov, the flat BLUPs b (term by term, level by level) and each
    term's conditional covariance blocks (levels × k × k).
    """
    n, p = X.shape
    Zs, lams, pos = [], [], 0
    for t in terms:
        k = t.Z.shape[1]
        m = sum((b - a) * (b - a + 1) // 2 for a, b, _ in t.blocks)
        lams.append(np.kron(np.eye(t.nlevels), dense_term_lambda(t.blocks, k, theta[pos:pos + m])))
        pos += m
        Zs.append(dense_Z(t.Z, t.codes, t.nlevels))
    Zf = np.hstack(Zs)
    qs = [z.shape[1] for z in Zs]
    lam = np.zeros((sum(qs), sum(qs)))
    off = 0
    for L in lams:
        lam[off:off + L.shape[0], off:off + L.shape[0]] = L
        off += L.shape[0]
    G = lam @ lam.T
    Winv = np.eye(n) if weights is None else np.diag(1.0 / np.asarray(weights))
    V = Winv + Zf @ G @ Zf.T
    Vinv = np.linalg.inv(V)
    XtVX = X.T @ Vinv @ X
    beta = np.linalg.solve(XtVX, X.T @ Vinv @ y)
    r = y - X @ beta
    quad = r @ Vinv @ r
    logdetV = np.linalg.slogdet(V)[1] - (0.0 if weights is None else -np.sum(np.log(weights)))
    if reml:
        s2 = quad / (n - p)
        crit = logdetV + np.linalg.slogdet(XtVX)[1] + (n - p) * (1 + np.log(2 * np.pi * s2))
    else:
        s2 = quad / n
        crit = logdetV + n * (1 + np.log(2 * np.pi * s2))
    b = G @ Zf.T @ Vinv @ r
    C = s2 * (G - G @ Zf.T @ Vinv @ Zf @ G)
    condvar, off = [], 0
    for t in terms:
        k = t.Z.shape[1]
        condvar.append(np.array([C[off + j * k:off + (j + 1) * k, off + j * k:off + (j + 1) * k]
                                 for j in range(t.nlevels)]))
        off += t.nlevels * k
    return {"criterion": crit, "beta": beta, "sigma": np.sqrt(s2), "vcov": s2 * np.linalg.inv(XtVX),
            "b": b, "condvar": condvar, "quad": quad, "Z": Zf, "Lambda": lam}
