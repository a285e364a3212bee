"""The optimiser: minimise any objective over the covariance parameters θ.

Used by :func:`mlmhelpers.lmer` for the profiled REML/ML criterion; it only
needs the objective (and a gradient, exact or finite-difference), so a
GLMM's Laplace deviance can use it too.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize

__all__ = ["OptimResult", "central_gradient", "forward_gradient", "optimize_theta"]


@dataclass
class OptimResult:
    theta: np.ndarray
    fun: float
    nfev: int
    optimizers: list[str]
    converged: bool
    max_grad: float
    message: str
    #: θ in the optimiser's own parametrisation when it differs from lme4's (see ScaledTheta).
    theta_search: np.ndarray | None = None


def _difference_gradient(f, theta: np.ndarray, rel_step: float, central: bool) -> tuple[float, np.ndarray]:
    theta = np.asarray(theta, dtype=float)
    val = f(theta)
    g = np.empty(theta.size)
    for i in range(theta.size):
        h = rel_step * max(1.0, abs(theta[i]))
        e = np.zeros(theta.size)
        e[i] = h
        g[i] = (f(theta + e) - f(theta - e)) / (2 * h) if central else (f(theta + e) - val) / h
    return val, g


def central_gradient(f, theta: np.ndarray) -> tuple[float, np.ndarray]:
    """``f(θ)`` and its central-difference gradient (relative step 1e-5)."""
    return _difference_gradient(f, theta, 1e-5, central=True)


def forward_gradient(f, theta: np.ndarray) -> tuple[float, np.ndarray]:
    """``f(θ)`` and a forward-difference gradient (step 1e-8 · max(1, |θ_i|)): cheap, for the search."""
    return _difference_gradient(f, theta, 1e-8, central=False)


def _convergence_check(fg, theta: np.ndarray, lower: np.ndarray, tol: float = 2e-3,
                       hess_step: float = 1e-5) -> tuple[bool, float, np.ndarray]:
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
        h = hess_step * max(1.0, abs(theta[i]))
        e = np.zeros(k)
        e[i] = h
        _, gi = fg(theta + e)
        H[:, i] = (gi - g) / h
    H = 0.5 * (H + H.T)
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


def _boundary_is_minimum(f, theta: np.ndarray, fun: float, is_diag: np.ndarray):
    """``None`` if no zero diagonal entry of θ can move into the interior and lower ``f``.

    Otherwise ``(f, θ)`` of the best interior point tried. At a zero diagonal
    the criterion's derivative vanishes by symmetry (it depends on Λ only
    through ΛΛᵀ), so a gradient check cannot tell a minimum from a maximum
    there: the criterion itself is compared along each such direction.
    """
    best = None
    scale = max(1.0, float(np.max(np.abs(theta))))
    for i in np.flatnonzero(is_diag & (theta < 1e-4)):
        for delta in (1e-3, 1e-2, 1e-1, 0.5):
            th = theta.copy()
            th[i] = delta * scale
            val = f(th)
            if val < fun - 1e-10 * abs(fun) and (best is None or val < best[0]):
                best = (val, th)
    return best


def _newton_search(fgh: Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]],
                   f: Callable[[np.ndarray], float], theta0: np.ndarray, *, max_iter: int = 50,
                   tol: float = 1e-5) -> tuple[bool, float, np.ndarray]:
    """Newton's method in φ = θ² with an approximate Hessian, for an interior optimum.

    ``fgh(θ)`` returns the criterion, its gradient in θ and a positive
    (semi-)definite approximation of its Hessian in φ. Each step is
    ``Δφ = −H⁻¹ ∂f/∂φ``, halved until it keeps φ positive and lowers the
    criterion (objective-only evaluations, cheaper than ``fgh``). Returns
    ``(converged, f, θ)``: converged when the predicted decrease
    ``½ gᵀH⁻¹g`` is below ``tol``. It gives up (``converged`` False, the
    best point so far returned) when a θ heads for zero (a boundary optimum:
    the caller's bounded search handles those), when ``H`` is not positive
    definite, or when no step lowers the criterion.
    """
    theta = np.asarray(theta0, dtype=float).copy()
    if np.any(theta <= 0):
        return False, np.inf, theta
    fun, g, H = fgh(theta)
    if not np.isfinite(fun):
        return False, np.inf, theta
    scale = max(1.0, float(np.max(theta)))
    for _ in range(max_iter):
        phi = theta**2
        gphi = g / (2.0 * theta)
        try:
            c = np.linalg.cholesky(H)
        except np.linalg.LinAlgError:
            return False, fun, theta
        step = -np.linalg.solve(c.T, np.linalg.solve(c, gphi))
        decrease = -0.5 * float(gphi @ step)
        if not np.isfinite(decrease):
            return False, fun, theta
        if decrease < tol:
            return True, fun, theta
        # The full step is tried with fgh itself (near the optimum it is always taken);
        # shorter steps with the objective alone, then fgh once at the accepted point.
        t, new = 1.0, None
        while t >= 1e-6:
            new_phi = phi + t * step
            if np.all(new_phi > 0):
                new_theta = np.sqrt(new_phi)
                if t == 1.0:
                    new = fgh(new_theta)
                    if new[0] <= fun:
                        break
                    new = None
                elif f(new_theta) <= fun:
                    new = fgh(new_theta)
                    break
            t *= 0.5
        if new is None or not np.isfinite(new[0]):
            return False, fun, theta
        (fun, g, H), theta = new, new_theta
        if np.min(theta) < 1e-3 * scale:  # heading for a zero variance
            return False, fun, theta
    return False, fun, theta


def optimize_theta(objective: Callable[[np.ndarray], float],
                   objective_and_gradient: Callable[[np.ndarray], tuple[float, np.ndarray]],
                   *, theta0: np.ndarray, is_diag: np.ndarray,
                   canonical: Callable[[np.ndarray], np.ndarray] | None = None,
                   hess_step: float = 1e-5, gtol: float = 1e-8,
                   search_gradient: Callable[[np.ndarray], tuple[float, np.ndarray]] | None = None,
                   newton: Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]] | None = None) -> OptimResult:
    """Minimise an objective over θ (diagonal entries of Λ bounded below by 0).

    Parameters
    ----------
    objective : callable
        θ → criterion (``inf`` where undefined).
    objective_and_gradient : callable
        θ → (criterion, gradient); the gradient may be a finite difference.
    theta0 : ndarray
        Start (lme4's: identity Λ).
    is_diag : ndarray of bool
        Which entries of θ are diagonal entries of Λ (bounded below by 0).
    canonical : callable, optional
        θ → the equivalent θ with a non-negative diagonal (same ΛΛᵀ).
    hess_step : float
        Relative step of the finite-difference Hessian in the convergence
        check (larger when the gradient is itself a finite difference).
    gtol : float
        L-BFGS-B's gradient tolerance; a looser one suits a finite-difference
        gradient (the Newton step of the convergence check then polishes the
        answer).
    search_gradient : callable, optional
        A cheaper (criterion, gradient) for the L-BFGS-B searches, e.g. a
        forward difference; ``objective_and_gradient`` is still used for the
        convergence check and its Newton step.
    newton : callable, optional
        θ → (criterion, gradient in θ, approximate Hessian in φ = θ²), e.g.
        :meth:`mlmhelpers.response.GaussianResponse.objective_gradient_information`.
        When given (several parameters, all diagonal), Newton's method in φ
        runs first (:func:`_newton_search`); the L-BFGS-B search runs only if
        it does not converge to an interior point, from the best point it
        reached.

    Notes
    -----
    With ``newton`` (large crossed models of scalar terms), a few Newton
    steps with the average-information Hessian replace most of the
    quasi-Newton iterations (each evaluation there factors a large dense
    block). The answer is then checked exactly as below.

    One parameter (a single random intercept or slope): bounded Brent search
    on ``[0, upper]`` with the boundary value 0 tried exactly. Several
    parameters: L-BFGS-B from lme4's start (Λ = I), unconstrained (the
    criterion depends on Λ only through ΛΛᵀ), then variances that end near
    zero are put exactly on the boundary and the rest re-optimised. Either
    way the answer is checked like lme4's ``checkConv`` (Newton step
    ``H⁻¹g`` at the optimum); when it passes, that Newton step is taken (if
    it lowers the criterion) to polish the answer; if the check fails,
    bounded Powell and Nelder–Mead restarts polish the best point. A
    boundary point (a zero variance) is accepted only if the criterion does
    not decrease when that variance is moved into the interior
    (:func:`_boundary_is_minimum`); otherwise the search resumes from there.

    Examples
    --------
    >>> import numpy as np
    >>> from mlmhelpers.optimize import optimize_theta
    >>> f = lambda t: float((t[0] - 2.0) ** 2 + 1.0)
    >>> fg = lambda t: (f(t), np.array([2 * (t[0] - 2.0)]))
    >>> r = optimize_theta(f, fg, theta0=np.array([1.0]), is_diag=np.array([True]))
    >>> round(float(r.theta[0]), 6), r.converged
    (2.0, True)
    """
    is_diag = np.asarray(is_diag, dtype=bool)
    lower = np.where(is_diag, 0.0, -np.inf)
    if canonical is None:
        def canonical(th):
            return np.asarray(th, dtype=float)
    bounds = [(0.0, None) if d else (None, None) for d in is_diag]
    nfev = 0
    # The last evaluation of Newton's method, by θ: the convergence check starts where it ended.
    known: dict[bytes, tuple[float, np.ndarray]] = {}
    # Criterion values by θ (the polished optimum is evaluated once, not again for the result).
    values: dict[bytes, float] = {}

    def f(th):
        nonlocal nfev
        key = np.asarray(th, dtype=float).tobytes()
        if key in values:
            return values[key]
        if key in known:
            return known[key][0]
        nfev += 1
        values[key] = val = objective(th)
        return val

    def fg(th):
        nonlocal nfev
        hit = known.get(np.asarray(th, dtype=float).tobytes())
        if hit is not None:
            return hit
        nfev += 1
        return objective_and_gradient(th)

    def fg_search(th):
        nonlocal nfev
        nfev += 1
        return (search_gradient or objective_and_gradient)(th)

    start = np.asarray(theta0, dtype=float)
    candidates: list[tuple[float, np.ndarray]] = []
    used: list[str] = []
    done = False  # set when Newton's method has found an interior optimum
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if len(start) == 1:
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
            f_brent, f_zero = float(res.fun), f(np.zeros(1))
            # The boundary wins ties within rounding (an estimate of 1e-18 is a zero variance):
            # it is listed first, and min() keeps the first of equal candidates.
            candidates.append((min(f_zero, f_brent) if f_zero <= f_brent + 1e-12 * abs(f_brent) else f_zero,
                               np.zeros(1)))
            candidates.append((f_brent, np.array([float(res.x)])))
        elif newton is not None and is_diag.all():
            def fgh(th):
                nonlocal nfev
                nfev += 1
                val = newton(th)
                known.clear()
                known[np.asarray(th, dtype=float).tobytes()] = (val[0], val[1])
                return val

            done, f_n, th_n = _newton_search(fgh, f, start)
            used.append("Newton (average information)")
            if np.isfinite(f_n):
                candidates.append((f_n, canonical(th_n)))
                start = th_n
        if len(start) > 1 and not done:
            # The criterion depends on Λ only through ΛΛᵀ, so the search may run
            # unconstrained: bounds would let the optimiser stop on a zero diagonal,
            # where the gradient vanishes by symmetry without being a minimum.
            # (A one-sided difference gradient is not fooled by the symmetry at a zero diagonal,
            # so with one the search may respect the bounds, which saves iterations.)
            res = optimize.minimize(fg_search, start, jac=True, method="L-BFGS-B",
                                    bounds=bounds if search_gradient is not None else None,
                                    options={"ftol": 1e-12 if gtol <= 1e-8 else 1e-10, "gtol": gtol,
                                             "maxiter": 5000})
            used.append("L-BFGS-B")
            th = canonical(np.asarray(res.x, dtype=float))
            candidates.append((f(th), th))
            near = is_diag & (th < 1e-3)
            if near.any():  # a singular fit: put the small variances exactly on the boundary
                th0 = th.copy()
                th0[near] = 0.0
                fixed = [(0.0, 0.0) if near[i] else (None, None) for i in range(len(th0))]
                r = optimize.minimize(fg_search, th0, jac=True, method="L-BFGS-B", bounds=fixed,
                                      options={"ftol": 1e-15, "gtol": gtol * 1e-2})
                candidates.append((float(r.fun), canonical(np.asarray(r.x, dtype=float))))
        fun, theta = min(candidates, key=lambda c: c[0])
        theta = np.where(is_diag, np.maximum(theta, 0.0), theta)
        if len(start) > 1:
            # A zero variance is accepted only if the criterion rises when it moves into the
            # interior; otherwise search again from the better interior point.
            for _ in range(3):
                better = _boundary_is_minimum(f, theta, fun, is_diag)
                if better is None:
                    break
                r = optimize.minimize(fg_search, better[1], jac=True, method="L-BFGS-B",
                                      bounds=bounds if search_gradient is not None else None,
                                      options={"ftol": 1e-12 if gtol <= 1e-8 else 1e-10, "gtol": gtol})
                th = canonical(np.asarray(r.x, dtype=float))
                f_th = f(th)
                fun, theta = min([better, (f_th, th)], key=lambda c: c[0])
                theta = np.where(is_diag, np.maximum(theta, 0.0), theta)
        ok, max_grad, step = _convergence_check(fg, theta, lower, hess_step=hess_step)
        if ok and np.any(step):
            # One Newton step with the Hessian of the check: quadratic convergence turns
            # the quasi-Newton answer into one accurate to about machine precision.
            # Near the optimum the criterion is flat to rounding (θ is determined by function
            # values only to about √eps), so the step is accepted unless it makes the criterion
            # worse beyond rounding: the gradient locates the optimum more precisely.
            polished = canonical(theta - step)
            f_new = f(polished)
            if f_new <= fun + 1e-13 * abs(fun):
                fun, theta = f_new, np.where(is_diag, np.maximum(polished, 0.0), polished)
        if not ok:
            for method, opts in (("Powell", {"xtol": 1e-10, "ftol": 1e-15, "maxfev": 20000}),
                                 ("Nelder-Mead", {"xatol": 1e-10, "fatol": 1e-13, "maxfev": 20000})):
                r = optimize.minimize(f, theta, method=method, bounds=bounds, options=opts)
                used.append(method)
                candidates.append((float(r.fun), np.asarray(r.x, dtype=float)))
            # Exact zeros for small diagonal entries (singular fits), then polish the rest.
            fun, theta = min(candidates, key=lambda c: c[0])
            near = is_diag & (theta < 1e-3)
            if near.any():
                th = theta.copy()
                th[near] = 0.0
                fixed = [(0.0, 0.0) if near[i] else bounds[i] for i in range(len(th))]
                r = optimize.minimize(fg, th, jac=True, method="L-BFGS-B", bounds=fixed,
                                      options={"ftol": 1e-15, "gtol": 1e-10})
                candidates.append((float(r.fun), np.asarray(r.x, dtype=float)))
            fun, theta = min(candidates, key=lambda c: c[0])
            theta = np.where(is_diag, np.maximum(theta, 0.0), theta)
            ok, max_grad, _ = _convergence_check(fg, theta, lower, hess_step=hess_step)
    message = "converged" if ok else f"Model failed to converge with max|H^-1 grad| = {max_grad:.3g} (tol = 0.002)"
    return OptimResult(theta=theta, fun=float(f(theta)), nfev=nfev, optimizers=used, converged=ok,
                       max_grad=max_grad, message=message)
