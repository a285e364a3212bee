"""The fitting engine: lme4's profiled criterion over the covariance factor θ.

The model is ``y = X β + Z b + ε`` with ``ε ~ N(0, σ² I)`` and
``b = Λ_θ u``, ``u ~ N(0, σ² I)``. For one grouping factor with ``q``
random-effect columns, ``Λ_θ`` is block diagonal with one ``q × q``
lower-triangular block per group, the same block ``Λ`` for every group. As in
lme4 (Bates, Mächler, Bolker & Walker 2015, *J. Stat. Softw.* 67(1),
section 3), β and σ are profiled out, so the optimiser searches only over θ,
the free entries of ``Λ`` (column-major lower triangle, diagonal entries
bounded below by 0).

Everything is computed from per-group sufficient statistics
(``Z_jᵀZ_j``, ``Z_jᵀX_j``, ``Z_jᵀy_j``), so one evaluation of the criterion
costs ``O(J q³ + J q² p)`` with batched NumPy linear algebra: no Python loop
over groups.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy.linalg import cho_solve, solve_triangular

__all__ = ["SufficientStats", "ThetaMap", "PLSSolution", "sufficient_stats", "pls", "criterion", "optimize_theta"]

LOG2PI = np.log(2.0 * np.pi)
#: lme4's ``isSingular()`` tolerance on the diagonal of Λ.
SINGULAR_TOL = 1e-4


@dataclass(frozen=True)
class SufficientStats:
    """Per-group cross-products that determine the criterion."""

    ZtZ: np.ndarray  # (J, q, q)
    ZtX: np.ndarray  # (J, q, p)
    Zty: np.ndarray  # (J, q)
    XtX: np.ndarray  # (p, p)
    Xty: np.ndarray  # (p,)
    yty: float
    n: int

    @property
    def shape(self) -> tuple[int, int, int]:
        J, q, p = self.ZtX.shape
        return J, q, p


def _group_sum(groups: np.ndarray, weights: np.ndarray, J: int) -> np.ndarray:
    return np.bincount(groups, weights=weights, minlength=J)


def sufficient_stats(y: np.ndarray, X: np.ndarray, Z: np.ndarray, groups: np.ndarray, J: int) -> SufficientStats:
    """Per-group cross-products ``Z_jᵀZ_j``, ``Z_jᵀX_j``, ``Z_jᵀy_j`` and global ``XᵀX``, ``Xᵀy``.

    Columns that are constant 1 (intercepts) are detected so their products
    reuse the group counts instead of another pass over the data.
    """
    n, p = X.shape
    q = Z.shape[1]
    ZtZ = np.empty((J, q, q))
    ZtX = np.empty((J, q, p))
    Zty = np.empty((J, q))
    for a in range(q):
        za = Z[:, a]
        for b in range(a, q):
            s = _group_sum(groups, za * Z[:, b], J)
            ZtZ[:, a, b] = s
            ZtZ[:, b, a] = s
        for k in range(p):
            ZtX[:, a, k] = _group_sum(groups, za * X[:, k], J)
        Zty[:, a] = _group_sum(groups, za * y, J)
    return SufficientStats(ZtZ=ZtZ, ZtX=ZtX, Zty=Zty, XtX=X.T @ X, Xty=X.T @ y, yty=float(y @ y), n=n)


class ThetaMap:
    """Map the parameter vector θ to the ``q × q`` lower-triangular factor Λ.

    Parameters
    ----------
    q : int
        Number of random-effect columns per group.
    blocks : list of (start, stop, correlated)
        Column ranges sharing an unstructured covariance block; an
        uncorrelated term (``||``) contributes one 1×1 block per column.

    Notes
    -----
    θ lists, block by block, the lower triangle of each block in column-major
    order, exactly like lme4's ``getME(m, "theta")``: for a 2×2 block
    ``(λ11, λ21, λ22)``.
    """

    def __init__(self, q: int, blocks: list[tuple[int, int, bool]]):
        rows, cols = [], []
        for start, stop, _ in blocks:
            for c in range(start, stop):
                for r in range(c, stop):
                    rows.append(r)
                    cols.append(c)
        self.q = q
        self.rows = np.array(rows, dtype=np.intp)
        self.cols = np.array(cols, dtype=np.intp)
        self.is_diag = self.rows == self.cols
        self.blocks = list(blocks)

    @property
    def size(self) -> int:
        return len(self.rows)

    @property
    def lower(self) -> np.ndarray:
        return np.where(self.is_diag, 0.0, -np.inf)

    @property
    def theta0(self) -> np.ndarray:
        """lme4's default start: identity Λ."""
        return self.is_diag.astype(float)

    def bounds(self) -> list[tuple[float | None, float | None]]:
        return [(0.0, None) if d else (None, None) for d in self.is_diag]

    def Lambda(self, theta: np.ndarray) -> np.ndarray:
        lam = np.zeros((self.q, self.q))
        lam[self.rows, self.cols] = theta
        return lam


@dataclass
class PLSSolution:
    """Everything the penalised least-squares step yields at one θ."""

    theta: np.ndarray
    Lambda: np.ndarray
    L: np.ndarray  # (J, q, q) Cholesky factors of Λᵀ Z_jᵀZ_j Λ + I
    RZX: np.ndarray  # (J, q, p)
    RX: np.ndarray  # (p, p) lower Cholesky factor of the Schur complement
    beta: np.ndarray
    u: np.ndarray  # (J, q) spherical random effects
    b: np.ndarray  # (J, q) random effects on the data scale
    pwrss: float  # penalised weighted residual sum of squares r²
    ldL2: float  # log |L|²
    ldRX2: float  # log |RX|²
    n: int
    p: int

    def deviance(self, reml: bool) -> float:
        """The profiled criterion (−2 log-likelihood) at this θ."""
        if reml:
            nmp = self.n - self.p
            return self.ldL2 + self.ldRX2 + nmp * (1.0 + LOG2PI + np.log(self.pwrss / nmp))
        return self.ldL2 + self.n * (1.0 + LOG2PI + np.log(self.pwrss / self.n))

    def sigma(self, reml: bool) -> float:
        return float(np.sqrt(self.pwrss / (self.n - self.p if reml else self.n)))


def pls(theta: np.ndarray, stats: SufficientStats, tmap: ThetaMap) -> PLSSolution:
    """Solve the penalised least-squares problem at ``theta`` (Bates et al. 2015, eq. 11–19)."""
    J, q, p = stats.shape
    lam = tmap.Lambda(np.asarray(theta, dtype=float))
    # A_j = Λᵀ Z_jᵀZ_j Λ + I, batched over groups.
    A = np.einsum("ki,jkl,lm->jim", lam, stats.ZtZ, lam)
    A[:, np.arange(q), np.arange(q)] += 1.0
    L = np.linalg.cholesky(A)
    lamt_Zty = stats.Zty @ lam  # (J, q): row j is (Λᵀ Z_jᵀ y_j)ᵀ
    lamt_ZtX = np.einsum("ki,jkp->jip", lam, stats.ZtX)
    if q == 1:
        l = L[:, 0, 0]
        cu = lamt_Zty / l[:, None]
        RZX = lamt_ZtX / l[:, None, None]
    else:
        cu = np.linalg.solve(L, lamt_Zty[:, :, None])[:, :, 0]
        RZX = np.linalg.solve(L, lamt_ZtX)
    schur = stats.XtX - np.einsum("jqp,jqr->pr", RZX, RZX)
    rhs = stats.Xty - np.einsum("jqp,jq->p", RZX, cu)
    try:
        RX = np.linalg.cholesky(schur)
    except np.linalg.LinAlgError:
        raise np.linalg.LinAlgError(
            "The fixed-effects cross-product is not positive definite at this θ; "
            "the fixed-effect design may be collinear with the random effects."
        ) from None
    cbeta = solve_triangular(RX, rhs, lower=True)
    beta = solve_triangular(RX.T, cbeta, lower=False)
    resid_u = cu - np.einsum("jqp,p->jq", RZX, beta)
    if q == 1:
        u = resid_u / l[:, None]
    else:
        u = np.linalg.solve(np.swapaxes(L, 1, 2), resid_u[:, :, None])[:, :, 0]
    b = u @ lam.T
    pwrss = stats.yty - float(np.sum(cu * cu)) - float(cbeta @ cbeta)
    ldL2 = 2.0 * float(np.sum(np.log(np.diagonal(L, axis1=1, axis2=2))))
    ldRX2 = 2.0 * float(np.sum(np.log(np.diag(RX))))
    return PLSSolution(theta=np.asarray(theta, dtype=float).copy(), Lambda=lam, L=L, RZX=RZX, RX=RX,
                       beta=beta, u=u, b=b, pwrss=pwrss, ldL2=ldL2, ldRX2=ldRX2, n=stats.n, p=p)


def criterion(theta: np.ndarray, stats: SufficientStats, tmap: ThetaMap, reml: bool) -> float:
    """Profiled REML criterion or deviance at ``theta`` (``inf`` where undefined)."""
    try:
        sol = pls(theta, stats, tmap)
    except np.linalg.LinAlgError:
        return np.inf
    if not sol.pwrss > 0:
        return np.inf
    return sol.deviance(reml)


@dataclass
class OptimResult:
    theta: np.ndarray
    fun: float
    nfev: int
    optimizers: list[str]
    converged: bool
    max_grad: float
    message: str


def _finite_diff_grad_hess(f, x: np.ndarray, lower: np.ndarray, h: float = 1e-4):
    """Central-difference gradient and Hessian, one-sided at active lower bounds."""
    k = len(x)
    f0 = f(x)
    g = np.zeros(k)
    H = np.zeros((k, k))
    steps = np.full(k, h) * np.maximum(1.0, np.abs(x))
    for i in range(k):
        e = np.zeros(k)
        e[i] = steps[i]
        if x[i] - steps[i] < lower[i]:  # on the boundary: forward differences
            f1, f2 = f(x + e), f(x + 2 * e)
            g[i] = (-3 * f0 + 4 * f1 - f2) / (2 * steps[i])
            H[i, i] = (f0 - 2 * f1 + f2) / steps[i] ** 2
        else:
            fp, fm = f(x + e), f(x - e)
            g[i] = (fp - fm) / (2 * steps[i])
            H[i, i] = (fp - 2 * f0 + fm) / steps[i] ** 2
    for i in range(k):
        for j in range(i + 1, k):
            ei = np.zeros(k)
            ej = np.zeros(k)
            ei[i], ej[j] = steps[i], steps[j]
            if x[i] - steps[i] < lower[i] or x[j] - steps[j] < lower[j]:
                H[i, j] = H[j, i] = (f(x + ei + ej) - f(x + ei) - f(x + ej) + f0) / (steps[i] * steps[j])
            else:
                H[i, j] = H[j, i] = (
                    f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)
                ) / (4 * steps[i] * steps[j])
    return g, H


def _convergence_check(f, theta: np.ndarray, tmap: ThetaMap, tol: float = 2e-3) -> tuple[bool, float]:
    """lme4's ``checkConv``: the Newton step ``H⁻¹g`` at the optimum must be small.

    Parameters on an active bound (a zero diagonal of Λ) are excluded, as the
    gradient need not vanish there.
    """
    lower = tmap.lower
    g, H = _finite_diff_grad_hess(f, theta, lower)
    free = ~((theta <= lower + 1e-8) & (g > 0))
    if not free.any():
        return True, 0.0
    g, H = g[free], H[np.ix_(free, free)]
    try:
        step = np.linalg.solve(H, g)
        scaled = float(np.max(np.abs(step)))
    except np.linalg.LinAlgError:
        scaled = float(np.max(np.abs(g)))
    if not np.isfinite(scaled):
        scaled = float(np.max(np.abs(g)))
    return scaled < tol, scaled


def optimize_theta(stats: SufficientStats, tmap: ThetaMap, reml: bool, theta0: np.ndarray | None = None) -> OptimResult:
    """Minimise the profiled criterion over θ.

    L-BFGS-B (bounded, finite-difference gradient) does the work; a bounded
    Powell search restarts from its answer, and for every diagonal entry near
    zero the boundary value 0 is tried as well. The best point wins. The
    result is then checked like lme4's ``checkConv``.
    """
    nfev = 0

    def f(th):
        nonlocal nfev
        nfev += 1
        return criterion(th, stats, tmap, reml)

    start = tmap.theta0 if theta0 is None else np.asarray(theta0, dtype=float)
    bounds = tmap.bounds()
    candidates: list[tuple[float, np.ndarray, str]] = []
    used: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = optimize.minimize(f, start, method="L-BFGS-B", bounds=bounds,
                                options={"ftol": 1e-14, "gtol": 1e-9, "maxiter": 2000})
        used.append("L-BFGS-B")
        candidates.append((float(res.fun), np.asarray(res.x, dtype=float), "L-BFGS-B"))
        best = min(candidates, key=lambda c: c[0])
        res2 = optimize.minimize(f, best[1], method="Powell", bounds=bounds,
                                 options={"xtol": 1e-10, "ftol": 1e-14, "maxfev": 20000})
        used.append("Powell")
        candidates.append((float(res2.fun), np.asarray(res2.x, dtype=float), "Powell"))
        best = min(candidates, key=lambda c: c[0])
        # Try the boundary exactly for small diagonal entries (singular fits).
        th = best[1].copy()
        near = tmap.is_diag & (th < 1e-3)
        if near.any():
            th[near] = 0.0
            # Off-diagonal entries in a column with a zero diagonal do not matter when the
            # column is zero; keep them but let the optimiser polish the rest.
            fb = f(th)
            if np.isfinite(fb):
                candidates.append((fb, th, "boundary"))
                free_bounds = [(0.0, 0.0) if near[i] else bounds[i] for i in range(len(th))]
                res3 = optimize.minimize(f, th, method="L-BFGS-B", bounds=free_bounds,
                                         options={"ftol": 1e-14, "gtol": 1e-9})
                candidates.append((float(res3.fun), np.asarray(res3.x, dtype=float), "boundary"))
        fun, theta, _ = min(candidates, key=lambda c: c[0])
        theta = np.where(tmap.is_diag, np.maximum(theta, 0.0), theta)
        ok, max_grad = _convergence_check(f, theta, tmap)
        if not ok:
            res4 = optimize.minimize(f, theta, method="Nelder-Mead", bounds=bounds,
                                     options={"xatol": 1e-10, "fatol": 1e-12, "maxfev": 20000})
            used.append("Nelder-Mead")
            if res4.fun < fun:
                fun, theta = float(res4.fun), np.asarray(res4.x, dtype=float)
            ok, max_grad = _convergence_check(f, theta, tmap)
    message = "converged" if ok else f"Model failed to converge with max|H^-1 grad| = {max_grad:.3g} (tol = 0.002)"
    return OptimResult(theta=theta, fun=float(fun), nfev=nfev, optimizers=used, converged=ok,
                       max_grad=max_grad, message=message)


def conditional_variances(sol: PLSSolution, sigma: float) -> np.ndarray:
    """Conditional covariance of each group's random effects, ``σ² Λ (L_j L_jᵀ)⁻¹ Λᵀ``.

    This is what ``lme4::ranef(m, condVar = TRUE)`` attaches as ``postVar``
    (conditional on the estimated β and θ) and what ``arm::se.ranef`` takes
    the square root of.
    """
    J, q, _ = sol.L.shape
    eye = np.broadcast_to(np.eye(q), (J, q, q))
    Linv = np.linalg.solve(sol.L, eye)  # L_j⁻¹
    W = np.einsum("ik,jlk->jil", sol.Lambda, Linv)  # Λ L_j⁻ᵀ
    return sigma**2 * np.einsum("jik,jlk->jil", W, W)


def fixed_vcov(sol: PLSSolution, sigma: float) -> np.ndarray:
    """``σ² (RXᵀ RX)⁻¹``: lme4's ``vcov()``, equal to ``σ² (Xᵀ V⁻¹ X)⁻¹``."""
    p = sol.RX.shape[0]
    return sigma**2 * cho_solve((sol.RX, True), np.eye(p))
