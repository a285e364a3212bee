"""Simulation from a fitted model and the parametric bootstrap (lme4's ``simulate``, ``bootMer``;
pbkrtest's ``PBmodcomp``).

The parametric bootstrap treats the fitted model as the truth: it simulates
new responses ``y* = Xβ̂ + Z Λ_θ̂ u* σ̂ + σ̂ ε*`` (``u*``, ``ε*`` standard
normal), refits the model to each, and uses the spread of the refitted
quantities as their sampling distribution. It needs no asymptotic argument,
so it is the honest answer for variance parameters near zero and for small
numbers of groups, where Wald and χ² approximations fail.

Refits reuse everything that does not depend on the response (the
cross-products of the fixed random-effects design) and start from the fitted
θ, so a refit costs a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .results import LmerResult, _is_na_re_form

__all__ = ["simulate", "bootstrap", "pb_test", "boot_confint", "boot_intervals", "PBTest"]


def _need_fit(model, fname: str) -> LmerResult:
    if not isinstance(model, LmerResult):
        raise TypeError(f"{fname}() needs a model fitted by lmer(), got {type(model).__name__}.")
    return model


def _check_nsim(nsim) -> int:
    if isinstance(nsim, bool) or not isinstance(nsim, (int, np.integer)) or nsim < 1:
        raise ValueError(f"nsim must be a positive integer, got {nsim!r}.")
    return int(nsim)


def _simulate_matrix(model: LmerResult, nsim: int, rng: np.random.Generator, conditional: bool) -> np.ndarray:
    """Responses of shape (n, nsim): random effects (unless conditional), then residuals, from ``rng``."""
    X = model.design.X
    n = X.shape[0]
    sigma = model.sigma
    if conditional:
        mean = model.fitted.to_numpy()
        return mean[:, None] + sigma * rng.standard_normal((n, nsim))
    q = model.sol.u.size
    u = rng.standard_normal((q, nsim))
    y = (X @ model.fixef.to_numpy())[:, None] + sigma * model._zlambda(model.sol.theta, u)
    return y + sigma * rng.standard_normal((n, nsim))


def _simulate_glmer_matrix(model, nsim: int, rng: np.random.Generator, conditional: bool) -> np.ndarray:
    """glmer responses of shape (n, nsim) on the fit's response scale (proportions or counts)."""
    fam, resp = model.family, model.resp
    if conditional:
        eta = np.repeat(fam.linkfun(model.fitted.to_numpy())[:, None], nsim, axis=1)
    else:
        u = rng.standard_normal((model.fit.u.size, nsim))
        eta = (resp.offset + model.X @ model.fit.beta)[:, None] + model._zlambda(model.fit.theta, u)
    mu = fam.linkinv(eta)
    if fam.family == "binomial":
        trials = np.round(resp.pw).astype(np.int64)
        succ = rng.binomial(trials[:, None], np.clip(mu, 0.0, 1.0))
        return np.where(trials[:, None] > 0, succ / np.maximum(trials, 1)[:, None], 0.0)
    return rng.poisson(mu).astype(float)


def simulate(model, nsim: int = 1, seed: int | None = None, re_form="~0") -> pd.DataFrame:
    """Simulate responses from a fitted model, as lme4's ``simulate(m, nsim, seed)``.

    Parameters
    ----------
    model : LmerResult or GlmerResult
        For a ``glmer`` fit the responses are drawn from its family (binomial
        successes out of the prior weights, returned as proportions as the fit
        sees them; Poisson counts), with the fit's offset.
    nsim : int, default 1
        Number of simulated response vectors.
    seed : int, optional
        Seed of :func:`numpy.random.default_rng`; give one for reproducible results.
    re_form : "~0" or None, default "~0"
        ``"~0"`` (R's default ``re.form = NA``): new random effects are drawn
        for every group, ``y* ~ N(Xβ̂, σ̂²(I + ZΛΛᵀZᵀ))``, the model's
        marginal distribution. ``None`` (R's ``re.form = NULL``): the fitted
        random effects are kept and only new residuals drawn,
        ``y* ~ N(fitted, σ̂² I)``.

    Returns
    -------
    DataFrame
        One column per simulation, ``sim_1``, ``sim_2``, …, indexed like the
        rows used in the fit.

    Notes
    -----
    R equivalent: ``simulate(m, nsim = 1, seed = NULL, re.form = NA)``. The
    random numbers differ from R's, so single draws do not match R; their
    distribution does. For a binomial ``glmer`` fit lme4 returns proportions
    too when the model was fitted to proportions with weights (and a
    two-column matrix for ``cbind``); here it is always the proportions.

    Examples
    --------
    >>> import mlmhelpers as mh
    >>> m = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", mh.load_arrests())
    >>> mh.simulate(m, nsim=3, seed=1).shape
    (4286, 3)
    """
    from .glmer_result import GlmerResult

    if not isinstance(model, GlmerResult):
        model = _need_fit(model, "simulate")
    nsim = _check_nsim(nsim)
    conditional = not _is_na_re_form(re_form)
    rng = np.random.default_rng(seed)
    if isinstance(model, GlmerResult):
        y = _simulate_glmer_matrix(model, nsim, rng, conditional)
    else:
        y = _simulate_matrix(model, nsim, rng, conditional)
    return pd.DataFrame(y, index=model.design.row_index, columns=[f"sim_{i + 1}" for i in range(nsim)])


# ----------------------------------------------------------------- the bootstrap
def _varpar_names(model) -> list[str]:
    return [f".sig{i + 1:02d}" for i in range(model.n_theta)] + [".sigma"]


def boot_stats(fit: LmerResult) -> pd.Series:
    """lme4's ``bootMer`` function of ``confint(m, method = "boot")``: SDs and correlations, σ, β."""
    from .profile import _cv_to_sv, _theta_blocks

    sv = _cv_to_sv(_theta_blocks(fit), np.asarray(fit.sol.theta, dtype=float), fit.sigma)
    return pd.concat([pd.Series(sv, index=_varpar_names(fit)), fit.fixef.rename(None)])


def bootstrap(model: LmerResult, func: Callable | None = None, nsim: int = 500, seed: int | None = 0,
              *, re_form="~0", progress: bool | None = None) -> pd.DataFrame:
    """Parametric bootstrap, as lme4's ``bootMer(m, FUN, nsim, seed)``.

    Simulates ``nsim`` responses from the fitted model (:func:`simulate`),
    refits the model to each (REML or ML as fitted, starting from the fitted
    θ) and applies ``func`` to every refit.

    Parameters
    ----------
    model : LmerResult
    func : callable, optional
        ``func(fit)`` returns a number, a 1-d array or a pandas Series (whose
        index names the columns). Default: the standard deviations and
        correlations (``.sig01``, …), ``.sigma`` and the fixed effects, as
        lme4's ``confint(m, method = "boot")``.
    nsim : int, default 500
    seed : int or None, default 0
        Fixed by default so that results are reproducible.
    re_form : "~0" or None
        As in :func:`simulate` (R: ``use.u = FALSE`` is ``"~0"``).
    progress : bool, optional
        tqdm progress bar; default: only when stderr is a terminal, and
        only once the run has taken more than a second.

    Returns
    -------
    DataFrame
        ``nsim`` rows, one column per value of ``func``;
        ``.attrs["t0"]`` holds ``func(model)`` (boot's ``t0``),
        ``.attrs["n_singular"]`` and ``.attrs["n_not_converged"]`` count the
        refits that were singular or failed lme4's convergence check
        (their values are kept, as ``bootMer`` does).

    Notes
    -----
    R equivalent: ``bootMer(m, FUN, nsim = 500, seed = 0, use.u = FALSE,
    type = "parametric")``. Intervals from the result: :func:`boot_intervals`
    (percentile or basic, as ``boot::boot.ci``), or directly
    ``confint(m, method="boot")``.

    Examples
    --------
    >>> import mlmhelpers as mh
    >>> m = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", mh.load_arrests())
    >>> b = mh.bootstrap(m, lambda fit: fit.fixef, nsim=20, seed=1)
    >>> b.shape, list(b.columns)
    ((20, 2), ['(Intercept)', 'pop_pct_pov'])
    """
    from .profile import _cv_to_sv, _progress, _theta_blocks

    model = _need_fit(model, "bootstrap")
    nsim = _check_nsim(nsim)
    if func is None:  # the default statistics without pandas in the loop
        blocks = _theta_blocks(model)

        def values(fit):
            sv = _cv_to_sv(blocks, np.asarray(fit.sol.theta, dtype=float), fit.sigma)
            return np.concatenate([sv, np.asarray(fit.sol.beta, dtype=float)])

        t0 = boot_stats(model)
    elif callable(func):
        t0 = _as_series(func(model))

        def values(fit):
            return _as_series(func(fit)).to_numpy(dtype=float)
    else:
        raise TypeError("func must be a function of a fitted model, e.g. lambda fit: fit.fixef.")
    conditional = not _is_na_re_form(re_form)
    ystar = _simulate_matrix(model, nsim, np.random.default_rng(seed), conditional)
    theta0 = np.asarray(model.sol.theta, dtype=float)
    out = np.empty((nsim, len(t0)))
    singular = not_conv = 0
    bar = _progress(nsim, progress)
    for i in range(nsim):
        fit = model._refit(y=ystar[:, i], theta0=theta0)
        singular += bool(fit.is_singular)
        not_conv += not fit.converged
        out[i] = values(fit)
        bar.update(1)
    bar.close()
    res = pd.DataFrame(out, columns=t0.index)
    res.attrs.update({"t0": t0, "n_singular": singular, "n_not_converged": not_conv, "seed": seed})
    return res


def _as_series(value) -> pd.Series:
    if isinstance(value, pd.Series):
        return value.astype(float)
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    if arr.ndim != 1:
        raise ValueError("func must return a number, a 1-d array or a Series.")
    return pd.Series(arr, index=[f"t{i + 1}" for i in range(len(arr))])


def _norm_inter(t: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``boot:::norm.inter``: quantiles of the bootstrap sample, interpolated on the normal scale."""
    t = np.sort(t[np.isfinite(t)])
    R = len(t)
    rk = (R + 1) * alpha
    k = np.trunc(rk).astype(int)
    out = np.empty(len(alpha))
    for i, (ki, ri, a) in enumerate(zip(k, rk, alpha, strict=True)):
        if ki == 0:
            out[i] = t[0]
        elif ki >= R:
            out[i] = t[-1]
        elif ki == ri:
            out[i] = t[ki - 1]
        else:
            z, z1, z2 = stats.norm.ppf(a), stats.norm.ppf(ki / (R + 1)), stats.norm.ppf((ki + 1) / (R + 1))
            out[i] = t[ki - 1] + (z - z1) / (z2 - z1) * (t[ki] - t[ki - 1])
    return out


def boot_intervals(boot: pd.DataFrame, level: float = 0.95, type: str = "perc",
                   t0: pd.Series | None = None) -> pd.DataFrame:
    """Percentile or basic intervals from a :func:`bootstrap` result (``boot::boot.ci``).

    ``"perc"``: the ``(1 ± level)/2`` quantiles of the replicates;
    ``"basic"``: ``2 t0 − `` those quantiles, swapped. Quantiles are order
    statistics interpolated on the normal scale, as boot's ``norm.inter``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}.")
    if type not in ("perc", "basic"):
        raise ValueError(f"type must be 'perc' or 'basic', got {type!r}.")
    t0 = boot.attrs.get("t0") if t0 is None else t0
    alpha = np.array([(1 - level) / 2, (1 + level) / 2])
    rows = []
    for col in boot.columns:
        q = _norm_inter(boot[col].to_numpy(dtype=float), alpha)
        if type == "basic":
            q = 2 * float(t0[col]) - q[::-1]
        rows.append(q)
    return pd.DataFrame(rows, index=boot.columns, columns=["lower", "upper"])


def boot_confint(model: LmerResult, level: float = 0.95, parm=None, nsim: int = 500, seed: int | None = 0,
                 type: str = "perc", progress: bool | None = None) -> pd.DataFrame:
    """``confint(m, method = "boot")``: bootstrap intervals for ``.sig01``, …, ``.sigma`` and β."""
    from .profile import _which

    model = _need_fit(model, "confint")
    if type not in ("perc", "basic"):
        raise ValueError(f"boot_type must be 'perc' or 'basic', got {type!r}.")
    rows = _which(parm, _varpar_names(model), list(model.fixef.index))
    b = bootstrap(model, nsim=nsim, seed=seed, progress=progress)
    return boot_intervals(b, level, type).loc[rows]


# ----------------------------------------------------------------- PBmodcomp
@dataclass
class PBTest:
    """Result of :func:`pb_test`: the test table and the bootstrap reference distribution."""

    table: pd.DataFrame
    ref: np.ndarray
    n_extreme: int

    def __repr__(self) -> str:
        return f"Parametric bootstrap test; nsim: {len(self.ref)}, extremes: {self.n_extreme}\n{self.table}"


def pb_test(small: LmerResult, big: LmerResult, nsim: int = 1000, seed: int | None = 0,
            *, progress: bool | None = None) -> PBTest:
    """Parametric bootstrap likelihood-ratio test of nested models, as pbkrtest's ``PBmodcomp``.

    The likelihood-ratio statistic ``LRT = 2 (logLik(big) − logLik(small))``
    of the maximum-likelihood fits is compared with its distribution under
    the small model: ``nsim`` responses are simulated from the small model's
    ML fit, both models are refitted to each, and the p-value is
    ``(1 + #{LRT* ≥ LRT}) / (1 + nsim)``. For a variance component tested
    against zero the χ² reference is wrong (the null value is on the boundary
    of the parameter space); the bootstrap reference is not.

    Parameters
    ----------
    small, big : LmerResult
        Nested fits to the same rows and response; REML fits are refitted by
        ML first (as ``anova()`` does).
    nsim : int, default 1000
    seed : int or None, default 0

    Returns
    -------
    PBTest
        ``.table`` with rows ``LRT`` (χ² reference, df = difference in the
        number of parameters) and ``PBtest`` (bootstrap reference), columns
        ``stat``, ``df``, ``p_value``; ``.ref`` the simulated statistics.

    Notes
    -----
    R equivalent: ``pbkrtest::PBmodcomp(big, small, nsim = 1000, seed = 0)``.
    pbkrtest evaluates the ML log-likelihood at the models' own estimates
    (REML ones for REML fits); here both models are refitted by ML, the
    usual definition of the LRT.

    Examples
    --------
    >>> import mlmhelpers as mh
    >>> d = mh.load_arrests()
    >>> m0 = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", d)
    >>> m1 = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 + pop_pct_pov | stusps)", d)
    >>> res = mh.pb_test(m0, m1, nsim=20, seed=1)
    >>> print(res.table.round(4))
               stat   df  p_value
    LRT     149.6914  2.0   0.0000
    PBtest  149.6914  NaN   0.0476
    """
    from .profile import _progress

    small, big = _need_fit(small, "pb_test"), _need_fit(big, "pb_test")
    nsim = _check_nsim(nsim)
    if small.nobs != big.nobs or not np.array_equal(small.design.y, big.design.y):
        raise ValueError("The two models must be fitted to the same rows and the same response.")
    if small.npar >= big.npar:
        raise ValueError(f"small has {small.npar} parameters and big {big.npar}: give the smaller model first.")
    s_ml = small._refit(REML=False) if small.REML else small
    b_ml = big._refit(REML=False) if big.REML else big
    lrt = max(0.0, 2 * (b_ml.loglik - s_ml.loglik))
    df = big.npar - small.npar
    ystar = _simulate_matrix(s_ml, nsim, np.random.default_rng(seed), conditional=False)
    ref = np.empty(nsim)
    th_s, th_b = np.asarray(s_ml.sol.theta, dtype=float), np.asarray(b_ml.sol.theta, dtype=float)
    bar = _progress(nsim, progress)
    for i in range(nsim):
        ls = s_ml._refit(y=ystar[:, i], theta0=th_s).loglik
        lb = b_ml._refit(y=ystar[:, i], theta0=th_b).loglik
        ref[i] = max(0.0, 2 * (lb - ls))
        bar.update(1)
    bar.close()
    n_extreme = int(np.sum(ref >= lrt))
    table = pd.DataFrame({"stat": [lrt, lrt], "df": [float(df), np.nan],
                          "p_value": [float(stats.chi2.sf(lrt, df)), (1 + n_extreme) / (1 + nsim)]},
                         index=["LRT", "PBtest"])
    return PBTest(table=table, ref=ref, n_extreme=n_extreme)
