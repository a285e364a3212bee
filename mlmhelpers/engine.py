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
from scipy.linalg import cho_solve

__all__ = ["SufficientStats", "ThetaMap", "PLSSolution", "sufficient_stats", "pls", "criterion",
           "criterion_and_gradient", "optimize_theta", "conditional_variances", "fixed_vcov"]

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

    def canonical(self, theta: np.ndarray) -> np.ndarray:
        """The equivalent θ with a non-negative diagonal (same ΛΛᵀ).

        Negating a column of Λ leaves ΛΛᵀ, and so the model, unchanged.
        """
        theta = np.asarray(theta, dtype=float).copy()
        for c in np.unique(self.cols):
            diag = np.flatnonzero((self.cols == c) & self.is_diag)
            if theta[diag[0]] < 0:
                theta[self.cols == c] *= -1.0
        return theta

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


def _chol(A: np.ndarray) -> np.ndarray:
    """Cholesky factors of a stack of small SPD matrices, shape (J, q, q).

    The loop runs over the ``q`` columns, never over the ``J`` groups; for
    the small ``q`` of random-effect terms this is far faster than calling
    LAPACK once per group.
    """
    J, q, _ = A.shape
    L = np.zeros_like(A)
    for i in range(q):
        for j in range(i + 1):
            s = A[:, i, j] - np.einsum("jk,jk->j", L[:, i, :j], L[:, j, :j]) if j else A[:, i, j].copy()
            if i == j:
                if not s.min() > 0:  # also catches NaN
                    raise np.linalg.LinAlgError("matrix not positive definite")
                L[:, i, i] = np.sqrt(s)
            else:
                L[:, i, j] = s / L[:, j, j]
    return L


def _solve_lower(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Solve ``L_j X_j = B_j`` for lower-triangular ``L`` (J, q, q) and ``B`` (J, q, m)."""
    q = L.shape[1]
    X = np.empty_like(B)
    for i in range(q):
        acc = B[:, i, :]
        if i:
            acc = acc - np.einsum("jk,jkm->jm", L[:, i, :i], X[:, :i, :])
        X[:, i, :] = acc / L[:, i, i][:, None]
    return X


def _solve_upper_t(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Solve ``L_jᵀ X_j = B_j`` for lower-triangular ``L`` (J, q, q) and ``B`` (J, q, m)."""
    q = L.shape[1]
    X = np.empty_like(B)
    for i in range(q - 1, -1, -1):
        acc = B[:, i, :]
        if i < q - 1:
            acc = acc - np.einsum("jk,jkm->jm", L[:, i + 1:, i], X[:, i + 1:, :])
        X[:, i, :] = acc / L[:, i, i][:, None]
    return X


def pls(theta: np.ndarray, stats: SufficientStats, tmap: ThetaMap) -> PLSSolution:
    """Solve the penalised least-squares problem at ``theta`` (Bates et al. 2015, eqs. 11–19).

    With ``A_j = Λᵀ Z_jᵀZ_j Λ + I = L_j L_jᵀ`` per group,
    ``c_u = L⁻¹ Λᵀ Zᵀy``, ``R_ZX = L⁻¹ Λᵀ ZᵀX`` and the Schur complement
    ``R_Xᵀ R_X = XᵀX − R_ZXᵀ R_ZX``, the profiled quantities are
    ``β̂ = (R_Xᵀ R_X)⁻¹ (Xᵀy − R_ZXᵀ c_u)``, ``u = L⁻ᵀ (c_u − R_ZX β̂)`` and
    the penalised residual sum of squares ``r² = yᵀy − ‖c_u‖² − ‖c_β‖²``.
    """
    J, q, p = stats.shape
    theta = np.asarray(theta, dtype=float)
    lam = tmap.Lambda(theta)
    A = np.matmul(np.matmul(lam.T, stats.ZtZ), lam)
    A[:, np.arange(q), np.arange(q)] += 1.0
    L = _chol(A)
    # Right-hand sides Λᵀ Z_jᵀ y_j and Λᵀ Z_jᵀ X_j, solved together.
    rhs_all = np.concatenate([stats.Zty[:, :, None], stats.ZtX], axis=2)  # (J, q, 1 + p)
    rhs_all = np.matmul(lam.T, rhs_all)
    sol_all = _solve_lower(L, rhs_all)
    cu = sol_all[:, :, 0]
    RZX = sol_all[:, :, 1:]
    RZX2 = RZX.reshape(J * q, p)
    schur = stats.XtX - RZX2.T @ RZX2
    rhs = stats.Xty - RZX2.T @ cu.reshape(J * q)
    try:
        RX = np.linalg.cholesky(schur)
    except np.linalg.LinAlgError:
        raise np.linalg.LinAlgError(
            "The fixed-effects cross-product is not positive definite at this θ; "
            "the fixed-effect design may be collinear with the random effects."
        ) from None
    # β̂ solves R_Xᵀ R_X β = rhs, and ‖c_β‖² = ‖R_X⁻¹ rhs‖² = rhsᵀ β̂. (NumPy's solvers: the
    # p × p system is tiny and scipy's wrappers would cost more than the solve.)
    beta = np.linalg.solve(schur, rhs)
    cbeta_sq = float(rhs @ beta)
    resid_u = cu - RZX @ beta
    u = _solve_upper_t(L, resid_u[:, :, None])[:, :, 0]
    b = u @ lam.T
    pwrss = stats.yty - float(np.sum(cu * cu)) - cbeta_sq
    ldL2 = 2.0 * float(np.sum(np.log(np.diagonal(L, axis1=1, axis2=2))))
    ldRX2 = 2.0 * float(np.sum(np.log(np.diag(RX))))
    return PLSSolution(theta=theta.copy(), Lambda=lam, L=L, RZX=RZX, RX=RX,
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


def criterion_and_gradient(theta: np.ndarray, stats: SufficientStats, tmap: ThetaMap,
                           reml: bool) -> tuple[float, np.ndarray]:
    """The profiled criterion and its exact gradient with respect to θ.

    With ``E_k = ∂Λ/∂θ_k`` (a single 1 at row ``r_k``, column ``c_k``):

    * ``∂ log|L|² = 2 Σ_j [A_j⁻¹ Λᵀ Z_jᵀZ_j]_{c r}``;
    * ``∂ r² = −2 Σ_j w_j[r] u_j[c]`` with ``w_j = Z_jᵀ(y_j − X_jβ̂ − Z_j b_j)``
      (envelope theorem: β̂ and u are optimal);
    * ``∂ log|R_X|² = −2 Σ_j [P_j M⁻¹ Z_jᵀX_jᵀ]_{c r} + 2 Σ_j [Z_jᵀZ_j Λ P_j M⁻¹ P_jᵀ]_{r c}``
      with ``P_j = A_j⁻¹ Λᵀ Z_jᵀX_j`` and ``M = R_Xᵀ R_X``.

    Returns ``(inf, nan)`` where the criterion is undefined.
    """
    try:
        sol = pls(theta, stats, tmap)
    except np.linalg.LinAlgError:
        return np.inf, np.full(tmap.size, np.nan)
    if not sol.pwrss > 0:
        return np.inf, np.full(tmap.size, np.nan)
    J, q, p = stats.shape
    lam, L = sol.Lambda, sol.L
    r, c = tmap.rows, tmap.cols
    # A_j⁻¹ Λᵀ S_j
    lamt_S = np.matmul(lam.T, stats.ZtZ)
    G1 = _solve_upper_t(L, _solve_lower(L, lamt_S)).sum(axis=0)
    d_ldL2 = 2.0 * G1[c, r]
    # residual cross-products w_j and spherical effects u_j
    W = stats.Zty - stats.ZtX @ sol.beta - np.matmul(stats.ZtZ, sol.b[:, :, None])[:, :, 0]
    d_r2 = -2.0 * (W.T @ sol.u)[r, c]
    n = stats.n
    if reml:
        P = _solve_upper_t(L, sol.RZX)  # (J, q, p) = A⁻¹ Λᵀ ZᵀX
        Minv = np.linalg.inv(sol.RX @ sol.RX.T)
        PM = P @ Minv
        G2 = np.einsum("jqp,jsp->qs", PM, stats.ZtX)
        T = np.matmul(PM, np.swapaxes(P, 1, 2))  # (J, q, q)
        G3 = np.matmul(np.matmul(stats.ZtZ, lam), T).sum(axis=0)
        d_ldRX2 = -2.0 * G2[c, r] + 2.0 * G3[r, c]
        grad = d_ldL2 + d_ldRX2 + (n - p) * d_r2 / sol.pwrss
    else:
        grad = d_ldL2 + n * d_r2 / sol.pwrss
    return sol.deviance(reml), grad


@dataclass
class OptimResult:
    theta: np.ndarray
    fun: float
    nfev: int
    optimizers: list[str]
    converged: bool
    max_grad: float
    message: str


def _convergence_check(fg, theta: np.ndarray, tmap: ThetaMap, tol: float = 2e-3) -> tuple[bool, float, np.ndarray]:
    """lme4's ``checkConv``: the Newton step ``H⁻¹g`` at the optimum must be small.

    ``g`` is the exact gradient; ``H`` comes from forward differences of it
    (steps into the feasible region). Parameters on an active bound (a zero
    diagonal of Λ with a gradient pushing outwards) are excluded, as the
    gradient need not vanish there. Returns ``(ok, max|H⁻¹g|, H⁻¹g)``; the
    step (zero for excluded parameters) lets the caller polish the optimum.
    """
    k = len(theta)
    no_step = np.zeros(k)
    _, g = fg(theta)
    if not np.all(np.isfinite(g)):
        return False, np.inf, no_step
    H = np.empty((k, k))
    for i in range(k):
        h = 1e-5 * max(1.0, abs(theta[i]))
        e = np.zeros(k)
        e[i] = h
        _, gi = fg(theta + e)
        H[:, i] = (gi - g) / h
    H = 0.5 * (H + H.T)
    lower = tmap.lower
    free = ~((theta <= lower + 1e-8) & (g > 0))
    if not free.any():
        return True, 0.0, no_step
    g, H = g[free], H[np.ix_(free, free)]
    try:
        step_free = np.linalg.solve(H, g)
        scaled = float(np.max(np.abs(step_free)))
    except np.linalg.LinAlgError:
        step_free, scaled = np.zeros_like(g), float(np.max(np.abs(g)))
    if not np.isfinite(scaled):
        step_free, scaled = np.zeros_like(g), float(np.max(np.abs(g)))
    step = no_step.copy()
    step[free] = step_free
    return scaled < tol, scaled, step


def optimize_theta(stats: SufficientStats, tmap: ThetaMap, reml: bool, theta0: np.ndarray | None = None) -> OptimResult:
    """Minimise the profiled criterion over θ.

    One parameter (a single random intercept or slope): bounded Brent search
    on ``[0, upper]`` with the boundary value 0 tried exactly. Several
    parameters: L-BFGS-B with the exact gradient
    (:func:`criterion_and_gradient`) from lme4's start (Λ = I), then
    variances that end near zero are put exactly on the boundary and the rest
    re-optimised. Either way the answer is checked like lme4's
    ``checkConv`` (Newton step ``H⁻¹g`` at the optimum); when it passes, that
    Newton step is taken (if it lowers the criterion) to polish the answer;
    if the check fails, bounded Powell and Nelder–Mead restarts polish the
    best point.
    """
    nfev = 0

    def f(th):
        nonlocal nfev
        nfev += 1
        return criterion(th, stats, tmap, reml)

    def fg(th):
        nonlocal nfev
        nfev += 1
        return criterion_and_gradient(th, stats, tmap, reml)

    start = tmap.theta0 if theta0 is None else np.asarray(theta0, dtype=float)
    bounds = tmap.bounds()
    candidates: list[tuple[float, np.ndarray]] = []
    used: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if tmap.size == 1:
            upper = 1.0
            f_up = f(np.array([upper]))
            # Expand until the criterion rises at the upper end.
            while upper < 1e6 and f(np.array([upper * 4])) < f_up:
                upper *= 4
                f_up = f(np.array([upper]))
            upper *= 4
            res = optimize.minimize_scalar(lambda t: f(np.array([t])), bounds=(0.0, upper), method="bounded",
                                           options={"xatol": 1e-10, "maxiter": 500})
            used.append("Brent")
            candidates.append((float(res.fun), np.array([float(res.x)])))
            candidates.append((f(np.zeros(1)), np.zeros(1)))
        else:
            # The criterion depends on Λ only through ΛΛᵀ, so the search may run
            # unconstrained: bounds would let the optimiser stop on a zero diagonal,
            # where the gradient vanishes by symmetry without being a minimum.
            res = optimize.minimize(fg, start, jac=True, method="L-BFGS-B",
                                    options={"ftol": 1e-12, "gtol": 1e-8, "maxiter": 5000})
            used.append("L-BFGS-B")
            th = tmap.canonical(np.asarray(res.x, dtype=float))
            candidates.append((f(th), th))
            near = tmap.is_diag & (th < 1e-3)
            if near.any():  # a singular fit: put the small variances exactly on the boundary
                th0 = th.copy()
                th0[near] = 0.0
                fixed = [(0.0, 0.0) if near[i] else (None, None) for i in range(len(th0))]
                r = optimize.minimize(fg, th0, jac=True, method="L-BFGS-B", bounds=fixed,
                                      options={"ftol": 1e-15, "gtol": 1e-10})
                candidates.append((float(r.fun), tmap.canonical(np.asarray(r.x, dtype=float))))
        fun, theta = min(candidates, key=lambda c: c[0])
        theta = np.where(tmap.is_diag, np.maximum(theta, 0.0), theta)
        ok, max_grad, step = _convergence_check(fg, theta, tmap)
        if ok and np.any(step):
            # One Newton step with the Hessian of the check: quadratic convergence turns
            # the quasi-Newton answer into one accurate to about machine precision.
            polished = tmap.canonical(theta - step)
            f_new = f(polished)
            if f_new <= fun:
                fun, theta = f_new, np.where(tmap.is_diag, np.maximum(polished, 0.0), polished)
        if not ok:
            for method, opts in (("Powell", {"xtol": 1e-10, "ftol": 1e-15, "maxfev": 20000}),
                                 ("Nelder-Mead", {"xatol": 1e-10, "fatol": 1e-13, "maxfev": 20000})):
                r = optimize.minimize(f, theta, method=method, bounds=bounds, options=opts)
                used.append(method)
                candidates.append((float(r.fun), np.asarray(r.x, dtype=float)))
            # Exact zeros for small diagonal entries (singular fits), then polish the rest.
            fun, theta = min(candidates, key=lambda c: c[0])
            near = tmap.is_diag & (theta < 1e-3)
            if near.any():
                th = theta.copy()
                th[near] = 0.0
                fixed = [(0.0, 0.0) if near[i] else bounds[i] for i in range(len(th))]
                r = optimize.minimize(fg, th, jac=True, method="L-BFGS-B", bounds=fixed,
                                      options={"ftol": 1e-15, "gtol": 1e-10})
                candidates.append((float(r.fun), np.asarray(r.x, dtype=float)))
            fun, theta = min(candidates, key=lambda c: c[0])
            theta = np.where(tmap.is_diag, np.maximum(theta, 0.0), theta)
            ok, max_grad, _ = _convergence_check(fg, theta, tmap)
    message = "converged" if ok else f"Model failed to converge with max|H^-1 grad| = {max_grad:.3g} (tol = 0.002)"
    return OptimResult(theta=theta, fun=float(f(theta)), nfev=nfev, optimizers=used, converged=ok,
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
    return sigma**2 * cho_solve((sol.RX, True), np.eye(p), check_finite=False)
