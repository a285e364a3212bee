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


# --------------------------------------------------------------------------- #
# Weighted penalised least squares from the definition (the predictor interface)
# --------------------------------------------------------------------------- #


def _dense_lambda_block(k: int, blocks, theta: np.ndarray) -> np.ndarray:
    """One term's k × k lower-triangular Λ: θ fills each block's lower triangle column by column."""
    lam = np.zeros((k, k))
    i = 0
    for start, stop, _ in blocks:
        for c in range(start, stop):
            for r in range(c, stop):
                lam[r, c] = theta[i]
                i += 1
    return lam


class DensePredictor:
    """The engine's predictor interface (``factorize(θ, sqrtw)`` → ``solve``/``solve_u``), dense.

    Builds the full n × q matrix ``Z`` (all terms side by side, level by
    level) and the block-diagonal ``Λ_θ``, and solves the penalised weighted
    least-squares problems through the full normal equations with
    ``numpy.linalg``: no blocks, no Cholesky tricks, no sufficient statistics.
    An independent oracle for ``mlmhelpers.predictor.LinearPredictor`` and for
    code (PIRLS) written against its interface.
    """

    def __init__(self, X: np.ndarray, terms) -> None:
        self.X = np.asarray(X, dtype=float)
        self.terms = list(terms)
        self.n, self.p = self.X.shape
        self.q = sum(t.nlevels * t.Z.shape[1] for t in self.terms)
        cols = []
        for t in self.terms:
            k = t.Z.shape[1]
            Zt = np.zeros((self.n, t.nlevels * k))
            for i in range(self.n):
                Zt[i, t.codes[i] * k:(t.codes[i] + 1) * k] = t.Z[i]
            cols.append(Zt)
        self.Zfull = np.hstack(cols)
        self._ntheta = [sum((b - a) * (b - a + 1) // 2 for a, b, _ in t.blocks) for t in self.terms]
        self.n_theta = sum(self._ntheta)
        diag = []
        for t in self.terms:
            for a, b, _ in t.blocks:
                for c in range(a, b):
                    diag += [r == c for r in range(c, b)]
        self.is_diag = np.array(diag)
        self.theta0 = self.is_diag.astype(float)
        self.lower = np.where(self.is_diag, 0.0, -np.inf)

    def Lambdas(self, theta):
        out, i = [], 0
        for t, m in zip(self.terms, self._ntheta, strict=True):
            out.append(_dense_lambda_block(t.Z.shape[1], t.blocks, np.asarray(theta)[i:i + m]))
            i += m
        return out

    def full_lambda(self, theta) -> np.ndarray:
        return np.block([[np.kron(np.eye(t.nlevels), lam) if i == j else
                          np.zeros((t.nlevels * lam.shape[0], s.nlevels * self.Lambdas(theta)[j].shape[0]))
                          for j, s in enumerate(self.terms)]
                         for i, (t, lam) in enumerate(zip(self.terms, self.Lambdas(theta), strict=True))])

    def split_u(self, u):
        out, i = [], 0
        for t in self.terms:
            k = t.Z.shape[1]
            out.append(np.asarray(u)[i:i + t.nlevels * k].reshape(t.nlevels, k))
            i += t.nlevels * k
        return out

    def zlambda(self, theta, u):
        return self.Zfull @ (self.full_lambda(theta) @ np.asarray(u, dtype=float))

    def factorize(self, theta, sqrtw=None):
        return DenseFactorization(self, np.asarray(theta, dtype=float), sqrtw)


class _DenseSolution:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class DenseFactorization:
    def __init__(self, pred: DensePredictor, theta: np.ndarray, sqrtw) -> None:
        self.pred, self.theta = pred, theta
        self.w = np.ones(pred.n) if sqrtw is None else np.asarray(sqrtw, dtype=float) ** 2
        self.lam = pred.full_lambda(theta)
        self.ZL = pred.Zfull @ self.lam
        self.A = self.ZL.T @ (self.w[:, None] * self.ZL) + np.eye(pred.q)
        self.ldL2 = float(np.linalg.slogdet(self.A)[1])
        XtWX = pred.X.T @ (self.w[:, None] * pred.X)
        ZtWX = self.ZL.T @ (self.w[:, None] * pred.X)
        schur = XtWX - ZtWX.T @ np.linalg.solve(self.A, ZtWX)
        self.RX = np.linalg.cholesky(schur)
        self.ldRX2 = float(np.linalg.slogdet(schur)[1])

    def _result(self, y, beta, u):
        r = np.sqrt(self.w) * (y - self.pred.X @ beta - self.ZL @ u)
        return _DenseSolution(theta=self.theta, beta=beta, u=u, b=self.lam @ u, pwrss=float(r @ r + u @ u),
                              ldL2=self.ldL2, ldRX2=self.ldRX2, RX=self.RX, n=self.pred.n, p=self.pred.p)

    def solve(self, y):
        """(β, u) from the full normal equations of the penalised weighted least-squares problem."""
        y = np.asarray(y, dtype=float)
        M = np.hstack([self.ZL, self.pred.X])
        P = np.zeros((M.shape[1], M.shape[1]))
        P[:self.pred.q, :self.pred.q] = np.eye(self.pred.q)
        sol = np.linalg.solve(M.T @ (self.w[:, None] * M) + P, M.T @ (self.w * y))
        return self._result(y, sol[self.pred.q:], sol[:self.pred.q])

    def solve_u(self, y):
        y = np.asarray(y, dtype=float)
        u = np.linalg.solve(self.A, self.ZL.T @ (self.w * y))
        return self._result(y, np.zeros(self.pred.p), u)

    def condvar_blocks(self):
        C = self.lam @ np.linalg.solve(self.A, self.lam.T)
        out, i = [], 0
        for t in self.pred.terms:
            k = t.Z.shape[1]
            out.append(np.array([C[i + j * k:i + (j + 1) * k, i + j * k:i + (j + 1) * k] for j in range(t.nlevels)]))
            i += t.nlevels * k
        return out


def brute_force_glmm_deviance(y, weights, offset, X, codes, z, theta: float, beta, loglik_terms, linkinv) -> float:
    """−2 log-likelihood of a one-factor scalar random-effect GLMM by numerical integration.

    For each level ``j``: ``∫ Π_i p(y_i | μ_i(v)) φ(v) dv`` with
    ``η_i = offset_i + x_iβ + θ z_i v``, integrated by ``scipy.integrate.quad``
    over ±40 around the mode after scaling by the integrand's maximum (found by a
    bounded scalar search), so nothing underflows. ``loglik_terms(y, mu, w)``
    returns −2 log p per observation (a family's terms).
    """
    from scipy import integrate, stats

    eta0 = offset + X @ beta
    total = 0.0
    for j in np.unique(codes):
        rows = codes == j
        yj, wj, ej, zj = y[rows], weights[rows], eta0[rows], z[rows]

        def logf(v, yj=yj, wj=wj, ej=ej, zj=zj):
            mu = linkinv(ej + theta * zj * v)
            return -0.5 * float(np.sum(loglik_terms(yj, mu, wj))) + stats.norm.logpdf(v)

        opt = optimize.minimize_scalar(lambda v: -logf(v), bounds=(-40, 40), method="bounded",
                                       options={"xatol": 1e-10})
        vmax, lmax = float(opt.x), -float(opt.fun)
        # v ~ N(0, 1): beyond ±40 around the mode the integrand is below exp(-700) of its peak
        val, _ = integrate.quad(lambda v, lmax=lmax: np.exp(logf(v) - lmax), vmax - 40, vmax + 40, points=[vmax],
                                epsabs=0, epsrel=1e-12, limit=500)
        total += -2.0 * (lmax + np.log(val))
    return total
