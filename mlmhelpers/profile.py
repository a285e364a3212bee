"""Profile-likelihood confidence intervals, as lme4's ``profile()`` and ``confint.merMod``.

For each parameter — the standard deviations and correlations of the random
effects (``.sig01``, ``.sig02``, …), the residual standard deviation
(``.sigma``) and each fixed effect — the ML deviance is minimised over all
other parameters with that one held fixed. The signed square root of the
increase over the minimum,

    ζ(x) = sign(x − x̂) √(d(x) − d(x̂)),

is approximately standard normal, so the interval for level ``1 − α`` is
``{x : |ζ(x)| ≤ z_{1−α/2}}``: the parameter values where the profiled deviance
is ``qchisq(level, 1)`` above its minimum. Unlike the Wald interval it need
not be symmetric, and it exists for the variance parameters, where the Wald
interval is poor.

lme4 computes ζ on a grid of points stepped outwards from the estimate
(steps of about ``δ = cutoff / 8`` in ζ), interpolates ζ(x) with a natural
cubic spline and inverts that spline. :func:`profile` follows the same
algorithm step for step, so the intervals agree with lme4's printed digits;
the interpolation itself is accurate to about 1e-4 relative (``delta_cutoff``
smaller makes the grid finer). :meth:`Profile.confint` with ``exact=True``
instead finds the roots of ``ζ(x) = ±z`` themselves (Brent's method).

As in lme4, a REML fit is profiled through its ML refit (lme4's ``devfun2``
calls ``refitML``), so a REML fit and its ML refit give the same intervals.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .messages import warn
from .results import LmerResult

__all__ = ["profile", "Profile"]

LOG2PI = np.log(2.0 * np.pi)


# ----------------------------------------------------------------- parameter layout
def _theta_blocks(model) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """Covariance blocks of θ: (global θ indices, rows, cols within the block, block size).

    Reads the engine's ThetaMap(s): ``model.predictor.terms[i].tmap`` (engine v2) or
    ``model.tmap`` (one grouping factor).
    """
    pred = getattr(model, "predictor", None)
    maps = ([(t.tmap, sl.start) for t, sl in zip(pred.terms, pred.theta_slices, strict=True)] if pred is not None
            else [(model.tmap, 0)])
    out = []
    for tmap, offset in maps:
        for start, stop, _ in tmap.blocks:
            k = np.flatnonzero((tmap.rows >= start) & (tmap.rows < stop))
            out.append((offset + k, tmap.rows[k] - start, tmap.cols[k] - start, stop - start))
    return out


def _cv_to_sv(blocks, theta: np.ndarray, sigma: float) -> np.ndarray:
    """θ and σ -> standard deviations (diagonal positions) and correlations (off-diagonal), then σ."""
    out = np.empty(len(theta) + 1)
    for idx, r, c, size in blocks:
        lam = np.zeros((size, size))
        lam[r, c] = theta[idx]
        cov = sigma**2 * lam @ lam.T
        sd = np.sqrt(np.diag(cov))
        for i, rr, cc in zip(idx, r, c, strict=True):
            if rr == cc:
                out[i] = sd[rr]
            else:
                out[i] = cov[rr, cc] / (sd[rr] * sd[cc]) if sd[rr] > 0 and sd[cc] > 0 else 0.0
    out[-1] = sigma
    return out


def _sv_to_cv(blocks, pars: np.ndarray) -> np.ndarray | None:
    """Inverse of :func:`_cv_to_sv`: θ from (sd, cor, …, σ); ``None`` if a block is not positive definite."""
    sigma = pars[-1]
    theta = np.empty(len(pars) - 1)
    for idx, r, c, size in blocks:
        sd = np.zeros(size)
        corr = np.eye(size)
        for i, rr, cc in zip(idx, r, c, strict=True):
            if rr == cc:
                sd[rr] = pars[i]
            else:
                corr[rr, cc] = corr[cc, rr] = pars[i]
        if size == 1:
            theta[idx] = sd[0] / sigma
            continue
        # Σ = D C D = (D L_C)(D L_C)ᵀ: the Cholesky factor of the correlation matrix scaled by the
        # standard deviations, defined also when a standard deviation is 0 (where chol(Σ) fails).
        lc = _chol_psd(corr)
        if lc is None:
            return None
        theta[idx] = (sd[:, None] * lc)[r, c] / sigma
    return theta


def _chol_psd(a: np.ndarray, tol: float = 1e-12) -> np.ndarray | None:
    """Lower Cholesky factor of a positive semi-definite matrix (zero pivots allowed); None if indefinite."""
    k = a.shape[0]
    lo = np.zeros_like(a)
    for j in range(k):
        d = a[j, j] - lo[j, :j] @ lo[j, :j]
        if d < -tol:
            return None
        lo[j, j] = np.sqrt(max(d, 0.0))
        for i in range(j + 1, k):
            v = a[i, j] - lo[i, :j] @ lo[j, :j]
            if lo[j, j] > 0:
                lo[i, j] = v / lo[j, j]
            elif abs(v) > tol:
                return None
    return lo


def _profile_names(blocks, n_theta: int) -> list[str]:
    return [f".sig{i + 1:02d}" for i in range(n_theta)] + [".sigma"]


# ----------------------------------------------------------------- splines (R's splines package)
def _natural_spline_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """First derivatives at the knots of the natural interpolating cubic spline (R's ``interpSpline``)."""
    from scipy.interpolate import CubicSpline

    return CubicSpline(x, y, bc_type="natural")(x, 1)


def _back_spline(x: np.ndarray, y: np.ndarray):
    """R's ``backSpline(interpSpline(y ~ x))``: the inverse x(y) as piecewise polynomials.

    Returns ``(knots, coef)`` with ``coef[i] = (c0, c1, c2, c3)`` on ``[knots[i], knots[i+1]]``, or
    ``None`` if y is not strictly increasing.
    """
    slopes = _natural_spline_slopes(x, y)
    adiff = np.diff(y)
    if not np.all(adiff > 0):
        return None
    kdiff = np.diff(x)
    nk = len(x)
    b = np.zeros((nk, 4))
    b[:, 0] = x
    b[:, 1] = 1.0 / slopes
    for i in range(nk - 1):
        a = np.array([[adiff[i] ** 2, adiff[i] ** 3], [2 * adiff[i], 3 * adiff[i] ** 2]])
        rhs = np.array([kdiff[i] - adiff[i] * b[i, 1], b[i + 1, 1] - b[i, 1]])
        b[i, 2:4] = np.linalg.solve(a, rhs)
    if nk > 2:
        b[0, 3] = b[nk - 2, 3] = 0.0
        a = np.array([[adiff[0], adiff[0] ** 2], [1.0, 2 * adiff[0]]])
        b[0, 1:3] = np.linalg.solve(a, np.array([kdiff[0], 1.0 / slopes[1]]))
        b[nk - 2, 2] = (kdiff[nk - 2] - adiff[nk - 2] * b[nk - 2, 1]) / adiff[nk - 2] ** 2
    if b[0, 2] > 0:
        b[0, 2] = 0.0
        b[0, 1] = kdiff[0] / adiff[0]
    if b[nk - 2, 2] < 0:
        b[nk - 2, 2] = 0.0
        b[nk - 2, 1] = kdiff[nk - 2] / adiff[nk - 2]
    return y, b


def _predict_back(spl, z: float) -> float:
    """R's ``predict(<polySpline>, z)``: NaN outside the knots."""
    knots, b = spl
    if not knots[0] <= z <= knots[-1]:
        return np.nan
    i = 0 if z == knots[0] else int(np.searchsorted(knots, z, side="left")) - 1  # cut(): (a, b]
    d = z - knots[i]
    return float(b[i, 0] + d * (b[i, 1] + d * (b[i, 2] + d * b[i, 3])))


# ----------------------------------------------------------------- the profile
@dataclass
class Profile:
    """A likelihood profile (lme4's ``thpr`` object).

    Attributes
    ----------
    table : DataFrame
        One row per evaluated point: ``.par`` (parameter name), ``value``
        and ``.zeta`` (signed root deviance difference), sorted by parameter
        and value.
    estimates : Series
        The ML estimates on the profiling scale (standard deviations,
        correlations, σ, fixed effects), in lme4's row order.
    """

    table: pd.DataFrame
    estimates: pd.Series
    lower: pd.Series
    upper: pd.Series
    _zeta: dict = field(repr=False, default_factory=dict)

    def confint(self, level: float = 0.95, exact: bool = False) -> pd.DataFrame:
        """Confidence intervals from the profile (lme4's ``confint(<thpr>, level)``).

        ``exact=False`` inverts the interpolating spline through the profile
        points, as lme4 does; ``exact=True`` solves ``ζ(x) = ±z`` by Brent's
        method between the grid points that bracket the root (the deviance at
        the ends is then exactly ``min + qchisq(level, 1)``).
        """
        if not 0 < level < 1:
            raise ValueError(f"level must be between 0 and 1, got {level}.")
        a = (1 - level) / 2
        zs = stats.norm.ppf([a, 1 - a])
        rows = []
        for name in self.estimates.index:
            pts = self.table[self.table[".par"] == name]
            x, z = pts["value"].to_numpy(), pts[".zeta"].to_numpy()
            ends = []
            for target, bound in zip(zs, (self.lower[name], self.upper[name]), strict=True):
                val = self._exact(name, x, z, target) if exact else self._spline(x, z, target)
                ends.append(bound if np.isnan(val) else val)
            rows.append(ends)
        pct = [f"{100 * a:.3g} %", f"{100 * (1 - a):.3g} %"]
        out = pd.DataFrame(rows, index=self.estimates.index, columns=["lower", "upper"])
        out.attrs["columns_in_R"] = pct
        return out

    @staticmethod
    def _spline(x, z, target) -> float:
        ok = np.isfinite(z)
        x, z = x[ok], z[ok]
        if len(x) >= 4:
            spl = _back_spline(x, z)
            if spl is not None:
                return _predict_back(spl, target)
        if len(x) >= 2 and np.all(np.diff(z) > -0.01):  # lme4: linear interpolation fallback
            if z.min() <= target <= z.max():
                return float(np.interp(target, z, x))
            return np.nan
        warn("non-monotonic profile: interval end not available", RuntimeWarning)
        return np.nan

    def _exact(self, name, x, z, target) -> float:
        ok = np.isfinite(z)
        x, z = x[ok], z[ok]
        side = (z - target)
        idx = np.flatnonzero(np.sign(side[:-1]) != np.sign(side[1:]))
        if target < 0:
            idx = idx[x[idx] <= self.estimates[name]]
        else:
            idx = idx[x[idx + 1] >= self.estimates[name]]
        if not idx.size:
            return np.nan
        i = idx[-1] if target < 0 else idx[0]
        fz = self._zeta[name]
        return float(optimize.brentq(lambda v: fz(v) - target, x[i], x[i + 1], xtol=1e-12, rtol=1e-12))


def _ml_fit(model: LmerResult) -> LmerResult:
    return model._refit(REML=False) if model.REML else model


def profile(model: LmerResult, which=None, *, delta_cutoff: float = 1 / 8, alphamax: float = 0.01,
            maxpts: int = 100, maxmult: float = 10.0, progress: bool | None = None) -> Profile:
    """Profile the ML deviance over each parameter, as lme4's ``profile(m)``.

    Parameters
    ----------
    model : LmerResult
        A fit by :func:`mlmhelpers.lmer`; a REML fit is profiled through its
        ML refit, as in lme4.
    which : list of str, optional
        Parameters to profile, by lme4 name (``".sig01"``, ``".sigma"``,
        ``"(Intercept)"``, …), or ``"theta_"`` (all variance parameters) or
        ``"beta_"`` (all fixed effects). Default: all.
    delta_cutoff : float, default 1/8
        Step of the grid in ζ, as a fraction of the cutoff
        ``sqrt(qchisq(1 - alphamax, n_parameters))`` (lme4's
        ``delta.cutoff``).
    alphamax, maxpts, maxmult
        lme4's arguments of the same names: the grid goes out to the cutoff,
        with at most ``maxpts`` points per direction, and steps grow by at most
        ``maxmult`` times the last one.
    progress : bool, optional
        Show a tqdm progress bar; default: only in an interactive session.

    Returns
    -------
    Profile
        ``.table`` of the profile points; ``.confint(level)`` the intervals.

    Notes
    -----
    R equivalent: ``pr <- profile(m); confint(pr)``; ``confint(m)`` for a
    merMod does both (here ``mh.confint(m, method="profile")``).

    Examples
    --------
    >>> import mlmhelpers as mh
    >>> m = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", mh.load_arrests())
    >>> mh.profile(m).confint().round(4)
                  lower   upper
    .sig01       1.9202  3.0692
    .sigma       3.6885  3.8492
    (Intercept)  1.0988  2.6287
    pop_pct_pov  0.1132  0.1535
    """
    if not isinstance(model, LmerResult):
        raise TypeError(f"profile() needs a model fitted by lmer(), got {type(model).__name__}.")
    fm = _ml_fit(model)
    blocks = _theta_blocks(fm)
    n_theta = fm.n_theta
    nvp = n_theta + 1
    theta_hat = np.asarray(fm.sol.theta, dtype=float)
    sv = _cv_to_sv(blocks, theta_hat, fm.sigma)
    beta_hat = fm.fixef.to_numpy()
    vnames = _profile_names(blocks, n_theta)
    bnames = list(fm.fixef.index)
    names = vnames + bnames
    est = pd.Series(np.concatenate([sv, beta_hat]), index=names)
    p = len(beta_hat)
    nptot = nvp + p
    # bounds on the profiling scale
    is_cor = np.zeros(nvp, bool)
    for idx, r, c, _ in blocks:
        is_cor[idx[r != c]] = True
    lower = np.where(is_cor, -1.0, 0.0)
    upper = np.where(is_cor, 1.0, np.inf)
    lower_all = pd.Series(np.concatenate([lower, np.full(p, -np.inf)]), index=names)
    upper_all = pd.Series(np.concatenate([upper, np.full(p, np.inf)]), index=names)
    which = _which(which, vnames, bnames)

    n = fm.nobs
    base = -2.0 * fm.loglik

    def devfun2(pars: np.ndarray) -> float:
        pars = np.where(is_cor, pars, np.abs(pars))  # even in every standard deviation and in σ
        if pars[-1] == 0:
            return np.inf
        theta = _sv_to_cv(blocks, pars)
        if theta is None or not np.all(np.isfinite(theta)):
            return np.inf
        try:
            sol = fm._pls_at(theta)
        except np.linalg.LinAlgError:
            return np.inf
        s2 = pars[-1] ** 2
        return float(sol.ldL2 + sol.pwrss / s2 + n * (LOG2PI + np.log(s2)))

    if abs(devfun2(sv) - base) > 1e-5 * max(1.0, abs(base)):
        raise RuntimeError("Profiling over the variance parameters does not reproduce the ML deviance.")
    from .satterthwaite import richardson_hessian

    hess = richardson_hessian(devfun2, sv, r=2)
    cutoff = np.sqrt(stats.chi2.ppf(1 - alphamax, nptot))
    delta = cutoff * delta_cutoff
    se_ml = fm.se_fixef.to_numpy()

    rows = []
    zeta_funs = {}
    bar = _progress(len(which), progress)

    def varpar_zeta(w):
        others = [i for i in range(nvp) if i != w]
        bnds = [(lower[i], None if not np.isfinite(upper[i]) else upper[i]) for i in others]

        lo_b = np.array([b[0] for b in bnds])
        hi_b = np.array([np.inf if b[1] is None else b[1] for b in bnds])
        # BFGS started from the curvature at the optimum (the inverse of the Hessian block of the
        # other parameters): a well-scaled quasi-Newton search that needs few evaluations.
        h_oo = hess[np.ix_(others, others)]
        try:
            hinv0 = np.linalg.inv(h_oo)
            hinv0 = 0.5 * (hinv0 + hinv0.T)
            if np.any(np.linalg.eigvalsh(hinv0) <= 0):
                hinv0 = None
        except np.linalg.LinAlgError:
            hinv0 = None

        def zeta(xx, start):
            def f(x):
                full = np.empty(nvp)
                full[w] = xx
                full[others] = x
                return devfun2(full) - base  # O(1) values: the tolerances below are absolute

            # The deviance error is quadratic in the parameters' error, so a gradient tolerance of
            # 1e-6 leaves the deviance (and ζ) exact to ~1e-11. The deviance is even in each standard
            # deviation, so the search may run unbounded (|sd| is taken afterwards).
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                x0 = np.clip(start, lo_b, hi_b)
                found = _quasi_newton(f, x0, hinv0) if hinv0 is not None else None
                if found is None:
                    res = optimize.minimize(f, x0, method="L-BFGS-B", bounds=bnds,
                                            options={"ftol": 1e-14, "gtol": 1e-7, "maxiter": 2000})
                    found = (np.asarray(res.x, dtype=float), float(res.fun))
            res_x = np.where(is_cor[others], found[0], np.abs(found[0]))
            dev = found[1] + base
            if not np.isfinite(dev):
                return np.nan, start
            diff = dev - base
            if diff < -1e-6 * max(1.0, abs(base)):
                raise RuntimeError(f"Profiling detected a lower deviance ({dev:.6f} < {base:.6f}): "
                                   "the fit is not at its optimum.")
            return float(np.sign(xx - sv[w]) * np.sqrt(max(0.0, diff))), res_x

        return zeta

    for name in which:
        if name in vnames:
            w = vnames.index(name)
            zeta = varpar_zeta(w)
            pw = sv[w]
            start0 = sv[[i for i in range(nvp) if i != w]]
            shift = 0.001 if pw == 0 else pw * 1.01
            pts = _fill(pw, shift, zeta, start0, delta, lower[w], upper[w], cutoff, maxpts, maxmult)
            zeta_funs[name] = (lambda v, _z=zeta, _s=start0: _z(v, _s)[0])
        else:
            j = bnames.index(name)
            X = fm.design.X
            Xdrop = np.delete(X, j, axis=1)
            xj = X[:, j]
            y = fm.design.y

            def fe_zeta(fw, start=None, _j=j, _xj=xj, _Xd=Xdrop, _y=y):
                r = fm._refit(y=_y - _xj * fw, X=_Xd, REML=False, theta0=theta_hat if start is None else start)
                dev = -2.0 * r.loglik
                return (float(np.sign(fw - beta_hat[_j]) * np.sqrt(max(0.0, dev - base))),
                        np.asarray(r.sol.theta, dtype=float))

            pw = beta_hat[j]
            pts = _fill(pw, pw + delta * se_ml[j], fe_zeta, theta_hat, delta, -np.inf, np.inf, cutoff, maxpts,
                        maxmult)
            zeta_funs[name] = (lambda v, _z=fe_zeta: _z(v)[0])
        for x, z in sorted(set(pts)):
            rows.append((name, x, z))
        bar.update(1)
    bar.close()
    table = pd.DataFrame(rows, columns=[".par", "value", ".zeta"])
    keep = [nm for nm in names if nm in which]
    return Profile(table=table, estimates=est[keep], lower=lower_all[keep], upper=upper_all[keep],
                   _zeta=zeta_funs)


def _quasi_newton(f, x0: np.ndarray, hinv: np.ndarray, tol: float = 1e-11, maxit: int = 100):
    """Minimise a smooth ``f`` from ``x0`` by BFGS with inverse-Hessian start ``hinv``.

    Central-difference gradients; backtracking line search that tolerates ``inf`` (outside the
    parameter space); stops when the predicted decrease ``gᵀ H⁻¹ g / 2`` is below ``tol``.
    Returns ``(x, f(x))`` or ``None`` if it fails.
    """
    def grad(x):
        h = 1e-5 * np.maximum(1.0, np.abs(x))
        g = np.empty_like(x)
        for i in range(len(x)):
            e = np.zeros_like(x)
            e[i] = h[i]
            g[i] = (f(x + e) - f(x - e)) / (2 * h[i])
        return g

    x = np.asarray(x0, dtype=float)
    fx = f(x)
    if not np.isfinite(fx):
        return None
    g = grad(x)
    H = hinv.copy()
    for _ in range(maxit):
        step = -H @ g
        slope = float(g @ step)
        if -slope < 2 * tol:
            break
        t = 1.0
        while True:
            xn = x + t * step
            fn = f(xn)
            if np.isfinite(fn) and fn <= fx + 1e-4 * t * slope:
                break
            t *= 0.5
            if t < 1e-10:
                return (x, fx) if np.all(np.isfinite(g)) else None
        gn = grad(xn)
        sv, yv = xn - x, gn - g
        sy = float(sv @ yv)
        if sy > 1e-14:
            rho = 1.0 / sy
            eye = np.eye(len(x))
            H = (eye - rho * np.outer(sv, yv)) @ H @ (eye - rho * np.outer(yv, sv)) + rho * np.outer(sv, sv)
        x, fx, g = xn, fn, gn
    return x, float(fx)


def _which(which, vnames, bnames) -> list[str]:
    names = vnames + bnames
    if which is None:
        return names
    if isinstance(which, str):
        which = {"theta_": vnames, "beta_": bnames}.get(which, [which])
    which = list(which)
    bad = [w for w in which if w not in names]
    if bad:
        raise ValueError(f"Unknown parameter(s) {bad}; choose from {names}, 'theta_' or 'beta_'.")
    return [nm for nm in names if nm in which]


def _fill(pw, shift, zeta, start0, delta, lowcut, upcut, cutoff, maxpts, maxmult):
    """lme4's ``fillmat`` in both directions from the estimate: returns (value, zeta) points."""
    z1, s1 = zeta(shift, start0)
    points = [(pw, 0.0), (shift, z1)]

    def run(prev, cur, start):
        out = []
        (p0, z0), (p1, zz1) = prev, cur
        prev_start = None
        i = 1
        while i < maxpts - 1 and lowcut < p1 < upcut and (np.isnan(zz1) or abs(zz1) <= cutoff):
            num = p1 - p0
            denom = zz1 - z0
            if np.isnan(denom) or denom == 0:
                step = 1e-6
            else:
                step = delta * num / denom
                if step < 0:
                    step = 1e-6
                elif abs(step) > abs(maxmult * num):
                    step = np.sign(step) * abs(maxmult * num)
            nxt = min(upcut, max(lowcut, p1 + np.sign(num) * step))
            guess = start
            if start is not None and prev_start is not None and p1 != p0:
                guess = start + (start - prev_start) * (nxt - p1) / (p1 - p0)  # linear extrapolation
            znew, snew = zeta(nxt, guess)
            if snew is not None:
                prev_start, start = start, snew
            out.append((nxt, znew))
            (p0, z0), (p1, zz1) = (p1, zz1), (nxt, znew)
            i += 1
        return out

    up = run((pw, 0.0), (shift, z1), s1)
    down = run((shift, z1), (pw, 0.0), start0) if pw > lowcut else []
    return [(float(x), float(z)) for x, z in points + up + down if not np.isnan(z)]


def _progress(total: int, show: bool | None):
    """A tqdm bar, shown after one second, when ``show`` or (default) when stderr is a terminal.

    Notebooks, pytest/nbval and redirected runs get no bar unless asked for (``progress=True``).
    """
    import sys

    if show is None:
        show = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    if show:
        from tqdm.auto import tqdm

        return tqdm(total=total, leave=False, delay=1.0)
    return _NoBar()


class _NoBar:
    def update(self, k: int = 1) -> None:
        pass

    def close(self) -> None:
        pass
