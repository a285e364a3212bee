"""R-style accessor functions and interval helpers for fitted models.

Each function mirrors the R function of the same name, so chapter code reads
like the R it replaces: ``fixef(m)``, ``ranef(m)``, ``coef(m)``,
``se_ranef(m)``. They work on :class:`~mlmhelpers.LmerResult` and, where R
allows it, on :class:`~mlmhelpers.LmResult`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .lm import LmResult
from .results import LmerResult

__all__ = [
    "fixef", "ranef", "coef", "vcov", "se_fixef", "se_ranef", "se_coef", "varcorr", "sigma", "ngrps",
    "is_singular", "confint", "coef_intervals", "icc", "group_intercepts", "predict_interval",
]


def _need_lmer(model, fname: str) -> LmerResult:
    if not isinstance(model, LmerResult):
        raise TypeError(f"{fname}() needs a model fitted by lmer(), got {type(model).__name__}.")
    return model


def _need_model(model, fname: str):
    if not isinstance(model, (LmerResult, LmResult)):
        raise TypeError(f"{fname}() needs a model fitted by lmer() or lm(), got {type(model).__name__}.")
    return model


def fixef(model: LmerResult) -> pd.Series:
    """Fixed-effect estimates (R: ``lme4::fixef(m)``).

    Examples
    --------
    >>> from mlmhelpers import lmer, fixef, load_arrests
    >>> m = lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", load_arrests())
    >>> fixef(m).round(4).to_dict()
    {'(Intercept)': 1.8611, 'pop_pct_pov': 0.1334}
    """
    return _need_lmer(model, "fixef").fixef


def _one_factor(model: LmerResult, tables, group: str | None, fname: str):
    if group is None:
        return tables
    names = [t.name for t in model.terms]
    if group not in names:
        raise ValueError(f"{group!r} is not a grouping factor of this model; {fname}() knows {names}.")
    return tables[group] if isinstance(tables, dict) else tables


def ranef(model: LmerResult, group: str | None = None) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """Conditional modes of the random effects, levels × terms (R: ``ranef(m)``).

    Parameters
    ----------
    model : LmerResult
    group : str, optional
        One grouping factor's table (R: ``ranef(m)$g``), e.g. ``"stusps"`` or
        ``"county:stusps"``.

    Returns
    -------
    DataFrame or dict of DataFrame
        With one grouping factor, its table; with several and no ``group``,
        a dict keyed by factor name in lme4's order (R's named list).

    Examples
    --------
    >>> from mlmhelpers import lmer, ranef, load_arrests
    >>> d = load_arrests().assign(county=lambda d: d.stusps + "-" + d.fips.astype(str))
    >>> m = lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps/county)", d)
    >>> list(ranef(m))
    ['county:stusps', 'stusps']
    >>> ranef(m, "stusps").shape
    (51, 1)
    """
    m = _need_lmer(model, "ranef")
    return _one_factor(m, m.ranef, group, "ranef")


def coef(model, group: str | None = None) -> pd.Series | pd.DataFrame | dict[str, pd.DataFrame]:
    """Coefficients, as R's ``coef()``.

    For an ``lmer`` fit: fixed plus random effects per level (``coef(m)$g``),
    a DataFrame, or a dict of them by factor for several grouping factors
    (``group`` picks one). For an ``lm`` fit: the coefficient Series.
    """
    m = _need_model(model, "coef")
    if isinstance(m, LmResult):
        if group is not None:
            raise ValueError("group= applies to lmer() fits only.")
        return m.coef
    return _one_factor(m, m.coef, group, "coef")


def vcov(model) -> pd.DataFrame:
    """Covariance matrix of the fixed effects / coefficients (R: ``vcov(m)``)."""
    return _need_model(model, "vcov").vcov


def se_fixef(model: LmerResult) -> pd.Series:
    """Standard errors of the fixed effects (R: ``arm::se.fixef(m)``)."""
    return _need_lmer(model, "se_fixef").se_fixef


def se_ranef(model: LmerResult, group: str | None = None) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """Conditional standard deviations of the random effects (R: ``arm::se.ranef(m)``).

    One table per grouping factor as :func:`ranef` (``group`` picks one).

    Examples
    --------
    >>> from mlmhelpers import lmer, se_ranef, load_faculty
    >>> m = lmer("salary ~ experience + (1 | department)", load_faculty())
    >>> se_ranef(m).shape
    (5, 1)
    """
    m = _need_lmer(model, "se_ranef")
    return _one_factor(m, m.se_ranef, group, "se_ranef")


def ngrps(model: LmerResult) -> pd.Series:
    """Number of levels of each grouping factor, in lme4's order (R: ``lme4::ngrps(m)``).

    Examples
    --------
    >>> from mlmhelpers import lmer, ngrps, load_arrests
    >>> ngrps(lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", load_arrests())).to_dict()
    {'stusps': 51}
    """
    return _need_lmer(model, "ngrps").ngroups


def se_coef(model: LmResult) -> pd.Series:
    """Standard errors of an ``lm`` fit's coefficients (R: ``arm::se.coef(m)``)."""
    if not isinstance(model, LmResult):
        raise TypeError("se_coef() needs a model fitted by lm(); for lmer() use se_fixef() and se_ranef().")
    return model.se_coef


def varcorr(model: LmerResult) -> pd.DataFrame:
    """Variance components (R: ``as.data.frame(lme4::VarCorr(m))``)."""
    return _need_lmer(model, "varcorr").varcorr


def sigma(model) -> float:
    """Residual standard deviation (R: ``sigma(m)``)."""
    return _need_model(model, "sigma").sigma


def is_singular(model: LmerResult) -> bool:
    """Whether the fit is singular (R: ``lme4::isSingular(m)``)."""
    return _need_lmer(model, "is_singular").is_singular


def confint(model, level: float = 0.95) -> pd.DataFrame:
    """Wald confidence intervals for the fixed effects / coefficients.

    For ``lm`` fits the t distribution with the residual degrees of freedom is
    used (R: ``confint(m)``); for ``lmer`` fits the normal distribution (R:
    ``confint(m, method = "Wald")``, which reports only the fixed effects).

    Returns
    -------
    DataFrame
        Columns ``lower`` and ``upper``, indexed by term.
    """
    _need_model(model, "confint")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}.")
    if isinstance(model, LmResult):
        est, se = model.coef, model.se_coef
        crit = stats.t.ppf(0.5 + level / 2, model.df_resid)
    else:
        est, se = model.fixef, model.se_fixef
        crit = stats.norm.ppf(0.5 + level / 2)
    return pd.DataFrame({"lower": est - crit * se, "upper": est + crit * se})


def coef_intervals(model: LmerResult, term: str = "(Intercept)", k: float = 2.0,
                   group: str | None = None) -> pd.DataFrame:
    """Each group's coefficient ± ``k`` conditional standard errors.

    Lecture A's interval table: ``coef(m)$g[, term] ± k * se.ranef(m)$g[, term]``.

    Parameters
    ----------
    model : LmerResult
    term : str
        A random-effect term, e.g. ``"(Intercept)"`` or ``"experience"``.
    k : float, default 2
        Half-width in standard errors.
    group : str, optional
        The grouping factor (needed when the model has several).

    Returns
    -------
    DataFrame
        Columns ``estimate``, ``std_error``, ``lower``, ``upper``, indexed by group.

    Notes
    -----
    R equivalent::

        coefs <- coef(m)$g[, term]; ses <- se.ranef(m)$g[, term]
        data.frame(lower = coefs - 2 * ses, upper = coefs + 2 * ses)
    """
    m = _need_lmer(model, "coef_intervals")
    names = [t.name for t in m.terms]
    if group is None and len(names) > 1:
        raise ValueError(f"This model has {len(names)} grouping factors; choose one with group=, one of {names}.")
    group = names[0] if group is None else group
    re = _one_factor(m, m.ranef, group, "coef_intervals")
    if term not in re.columns:
        raise ValueError(f"{term!r} is not a random-effect term of this model; choose from {list(re.columns)}.")
    if not (np.isfinite(k) and k > 0):
        raise ValueError(f"k must be a positive number, got {k}.")
    est = coef(m, group)[term]
    se = se_ranef(m, group)[term]
    return pd.DataFrame({"estimate": est, "std_error": se, "lower": est - k * se, "upper": est + k * se})


def icc(model: LmerResult, by_group: bool = False) -> float | pd.Series:
    """Adjusted intraclass correlation, as ``performance::icc(m)$ICC_adjusted``.

    For a random-intercept model this is σ²_α / (σ²_α + σ²): the share of the
    variance left after the fixed effects that lies between groups. It
    divides *variances*, not standard deviations. With several grouping
    factors the random-effect variances are summed (performance's adjusted
    ICC); ``by_group=True`` gives each factor's share instead,
    ``σ²_k / (Σ_k σ²_k + σ²)`` (``performance::icc(m, by_group = TRUE)``).

    For models with random slopes the group-level variance depends on the
    predictor; like the ``performance`` package (Nakagawa, Johnson &
    Schielzeth 2017; Johnson 2014) we use its average over the observed
    rows, mean over i of z_iᵀ Σ z_i, where z_i is row i of the random-effects
    design and Σ the random-effect covariance matrix.

    Examples
    --------
    >>> from mlmhelpers import lmer, icc, load_arrests
    >>> m = lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", load_arrests())
    >>> round(icc(m), 3)
    0.295
    """
    m = _need_lmer(model, "icc")
    s2 = m.sigma**2
    parts = {}
    for t, lam in zip(m.terms, m.sol.Lambdas, strict=True):
        cov = s2 * lam @ lam.T
        parts[t.name] = float(np.mean(np.einsum("ni,ij,nj->n", t.Z, cov, t.Z)))
    total = sum(parts.values()) + s2
    if by_group:
        return pd.Series({k: v / total for k, v in parts.items()}, name="icc")
    return sum(parts.values()) / total


def group_intercepts(model: LmResult, group: str) -> pd.DataFrame:
    """Each group's intercept from a fixed-effects (no-pooling) ``lm`` fit.

    With treatment coding, ``lm(y ~ x + factor(g))`` estimates the reference
    group's intercept as ``(Intercept)`` and every other group's as
    ``(Intercept) + factor(g)level``. This returns those sums with standard
    errors from the coefficient covariance matrix (the SE of a sum includes
    the covariance of its two terms).

    Parameters
    ----------
    model : LmResult
        A fit with an intercept and ``factor(group)`` (or ``C(group)``).
    group : str
        The grouping column, e.g. ``"stusps"``.

    Returns
    -------
    DataFrame
        Columns ``estimate``, ``std_error``, ``n`` (rows in the fit), indexed
        by group level (reference level first, then in R's level order).

    Notes
    -----
    R equivalent: ``b <- coef(m); b[1] + c(0, b[grep("factor(g)", names(b), fixed = TRUE)])``.
    """
    if not isinstance(model, LmResult):
        raise TypeError(f"group_intercepts() needs a model fitted by lm(), got {type(model).__name__}.")
    names = model.design.x_names
    if "(Intercept)" not in names:
        raise ValueError("The model has no intercept; group intercepts are then its factor coefficients.")
    prefixes = [f"factor({group})", f"C({group})", group]
    dummies = {}
    for pre in prefixes:
        found = {n[len(pre):]: n for n in names if n.startswith(pre) and ":" not in n and n != pre}
        if found:
            dummies = found
            break
    if not dummies:
        raise ValueError(f"No coefficients for factor({group}) in the model; terms are {names}.")
    if group not in model._data.columns:
        raise ValueError(f"{group!r} is not a column of the model's data.")
    used = model._data.loc[model.design.row_index, group].astype(str)
    counts = used.value_counts()
    levels = sorted(counts.index)
    ref = [lv for lv in levels if lv not in dummies]
    if len(ref) != 1:
        raise ValueError(f"Could not identify the reference level of {group!r}.")
    b, V = model.coef, model.vcov
    i0 = "(Intercept)"
    rows = {ref[0]: (b[i0], np.sqrt(V.loc[i0, i0]))}
    for lv, name in dummies.items():
        est = b[i0] + b[name]
        var = V.loc[i0, i0] + V.loc[name, name] + 2 * V.loc[i0, name]
        rows[lv] = (est, np.sqrt(var))
    order = [ref[0]] + [lv for lv in levels if lv != ref[0]]
    out = pd.DataFrame([rows[lv] for lv in order], index=pd.Index(order, name=group),
                       columns=["estimate", "std_error"])
    out["n"] = counts.reindex(order).to_numpy()
    return out


def predict_interval(
    model: LmerResult,
    newdata: pd.DataFrame,
    *,
    level: float = 0.95,
    n_sims: int = 2000,
    seed: int | None = 0,
    re_form=None,
    allow_new_levels: bool = False,
    include_residual: bool = True,
) -> pd.DataFrame:
    """Prediction intervals by simulation, in the spirit of ``merTools::predictInterval``.

    Each draw takes β from N(β̂, vcov), each known group's random effects
    from N(b̂_j, conditional covariance) and, for a group absent from the fit
    (``allow_new_levels=True``), random effects from N(0, Σ) with Σ the
    estimated random-effect covariance. With ``include_residual`` a
    residual N(0, σ̂²) is added, giving an interval for a new observation
    rather than for its mean. The variance parameters are held at their
    estimates, so the intervals are somewhat too narrow for small samples.

    Parameters
    ----------
    model : LmerResult
    newdata : DataFrame
    level : float, default 0.95
    n_sims : int, default 2000
    seed : int or None, default 0
        Seed of :func:`numpy.random.default_rng`; fixed by default so that
        results are reproducible.
    re_form : None or "~0"
        ``"~0"`` leaves the random effects out entirely: only the
        uncertainty of β (and the residual) enters.
    allow_new_levels : bool, default False
    include_residual : bool, default True

    Returns
    -------
    DataFrame
        ``fit`` (the point prediction, as :meth:`LmerResult.predict`),
        ``lower``, ``upper``, indexed like ``newdata``.

    Notes
    -----
    R: ``merTools::predictInterval(m, newdata, level = 0.95, n.sims = 2000)``
    is the closest equivalent; lme4 itself offers ``bootMer``.
    """
    from .formula import new_fixed_matrix
    from .results import _re_form_factors

    m = _need_lmer(model, "predict_interval")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}.")
    if int(n_sims) < 100:
        raise ValueError(f"n_sims must be at least 100, got {n_sims}.")
    fit = m.predict(newdata, re_form=re_form, allow_new_levels=allow_new_levels)
    rng = np.random.default_rng(seed)
    n_sims = int(n_sims)
    X = new_fixed_matrix(m.design, newdata)
    betas = rng.multivariate_normal(m.sol.beta, m.vcov.to_numpy(), size=n_sims)  # (S, p)
    draws = betas @ X.T  # (S, n)
    names = _re_form_factors(re_form, m.terms)
    included = m._new_codes(newdata, names, allow_new_levels)
    condvars = dict(zip([t.name for t in m.terms], m._condvar_list(), strict=True))
    blocks = dict(zip([t.name for t in m.terms], m.sol.b_blocks(), strict=True))
    lams = dict(zip([t.name for t in m.terms], m.sol.Lambdas, strict=True))
    for name, (Z, codes) in included.items():
        q = Z.shape[1]
        cov_new = m.sigma**2 * lams[name] @ lams[name].T
        chol_new = np.linalg.cholesky(cov_new + 1e-12 * np.eye(q))
        for code in np.unique(codes):
            rows = np.flatnonzero(codes == code)
            if code >= 0:
                mean, cov = blocks[name][code], condvars[name][code]
                b = mean + rng.standard_normal((n_sims, q)) @ np.linalg.cholesky(cov + 1e-12 * np.eye(q)).T
            else:  # one new level: its effects are unknown, drawn from the population
                b = rng.standard_normal((n_sims, q)) @ chol_new.T
            draws[:, rows] += b @ Z[rows].T
    if include_residual:
        draws += rng.normal(0.0, m.sigma, size=draws.shape)
    alpha = (1 - level) / 2
    lower, upper = np.quantile(draws, [alpha, 1 - alpha], axis=0)
    return pd.DataFrame({"fit": fit.to_numpy(), "lower": lower, "upper": upper}, index=newdata.index)
