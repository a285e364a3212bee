"""broom-style tables and model comparison (``tidy``, ``glance``, ``AIC``/``BIC`` tables, ``anova``)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats

from .glmer_result import GlmerResult
from .lm import LmResult
from .messages import ConvergenceWarning, SingularFitWarning, warn
from .results import LmerResult

__all__ = ["tidy", "glance", "aic", "bic", "anova", "shrinkage_table"]

_LMER_EFFECTS = ("fixed", "ran_pars", "ran_vals", "ran_coefs")


def tidy(model, effects: str | Iterable[str] | None = None, conf_int: bool = False,
         conf_level: float = 0.95, exponentiate: bool = False, ddf: str | None = None) -> pd.DataFrame:
    """A tidy table of a model's estimates, as ``broom::tidy`` / ``broom.mixed::tidy``.

    Parameters
    ----------
    model : LmResult, LmerResult or GlmerResult
    effects : str or list of str, optional
        For ``lmer`` fits, any of ``"fixed"``, ``"ran_pars"`` (standard
        deviations and correlations of the random effects, and the residual
        SD), ``"ran_vals"`` (conditional modes with their conditional SDs),
        ``"ran_coefs"`` (group-wise coefficients); with several grouping
        factors the ``group`` column names the factor. Default
        ``["fixed", "ran_pars"]``, as broom.mixed. Ignored for ``lm`` fits.
    conf_int : bool, default False
        Add Wald intervals ``conf_low``/``conf_high`` (t-based for ``lm``,
        normal for ``lmer`` fixed effects and ``ran_vals``).
    conf_level : float, default 0.95
    exponentiate : bool, default False
        For ``glmer`` fits with a logit or log link: report the fixed effects
        as odds ratios or rate ratios, ``exp(β)``, with ``std_error``
        ``exp(β) · SE`` (delta method) and the interval limits exponentiated;
        ``statistic`` and ``p_value`` stay those of β.
    ddf : {"Satterthwaite", "Kenward-Roger"}, optional
        For ``lmer`` fits: add ``df`` and ``p_value`` to the fixed effects,
        as lmerTest (``broom.mixed::tidy`` of an ``lmerModLmerTest`` fit).
        Kenward–Roger also replaces ``std_error`` by the adjusted one; with
        ``conf_int`` the fixed-effect intervals then use the t distribution
        with these df. See :func:`mlmhelpers.contest`.

    Returns
    -------
    DataFrame
        For ``lm``: ``term, estimate, std_error, statistic, p_value``. For
        ``lmer``: ``effect, group, term, estimate, std_error, statistic``
        (plus ``level`` for ``ran_vals``/``ran_coefs``). Like lme4 itself,
        no p-values are given for linear mixed models unless ``ddf`` is set;
        ``glmer`` fits add the Wald ``p_value`` of ``summary()`` for the fixed
        effects (as broom.mixed).

    Notes
    -----
    R equivalent: ``broom::tidy(m)`` and ``broom.mixed::tidy(m, effects = ...)``.
    Column names use ``_`` where broom uses ``.`` (``std_error``).

    Examples
    --------
    >>> from mlmhelpers import lm, tidy, load_arrests
    >>> tidy(lm("violent_arrest_per1000 ~ pop_pct_pov", load_arrests())).round(3)
              term  estimate  std_error  statistic  p_value
    0  (Intercept)     2.207      0.171     12.919      0.0
    1  pop_pct_pov     0.109      0.010     11.279      0.0
    """
    if not 0 < conf_level < 1:
        raise ValueError(f"conf_level must be between 0 and 1, got {conf_level}.")
    if isinstance(model, LmResult):
        out = pd.DataFrame({
            "term": model.design.x_names,
            "estimate": model.coef.to_numpy(),
            "std_error": model.se_coef.to_numpy(),
            "statistic": model.tvalues.to_numpy(),
            "p_value": model.pvalues.to_numpy(),
        })
        if conf_int:
            crit = stats.t.ppf(0.5 + conf_level / 2, model.df_resid)
            out["conf_low"] = out.estimate - crit * out.std_error
            out["conf_high"] = out.estimate + crit * out.std_error
        return out
    if isinstance(model, GlmerResult):
        if ddf is not None:
            raise ValueError("ddf= is for lmer fits (t tests with Satterthwaite or Kenward-Roger df); "
                             "glmer's fixed effects are tested with z statistics.")
        return _tidy_glmer(model, effects, conf_int, conf_level, exponentiate)
    if exponentiate:
        raise ValueError("exponentiate=True is for glmer fits with a logit or log link (odds or rate ratios).")
    if not isinstance(model, LmerResult):
        raise TypeError(f"tidy() needs a model fitted by lm(), lmer() or glmer(), got {type(model).__name__}.")
    effects = _effects_list(effects)
    crit = stats.norm.ppf(0.5 + conf_level / 2)
    parts = []
    for eff in effects:
        if eff == "fixed":
            fe, se = model.fixef, model.se_fixef
            if ddf is not None:
                from .lmertest import coef_table

                ct = coef_table(model, ddf)
                se = ct["Std. Error"]
            part = pd.DataFrame({"effect": "fixed", "group": None, "term": fe.index,
                                 "estimate": fe.to_numpy(), "std_error": se.to_numpy(),
                                 "statistic": (fe / se).to_numpy()})
            if ddf is not None:
                part["df"] = ct["df"].to_numpy()
                part["p_value"] = ct["Pr(>|t|)"].to_numpy()
            if conf_int:
                c = crit if ddf is None else stats.t.ppf(0.5 + conf_level / 2, part["df"].to_numpy())
                part["conf_low"] = part.estimate - c * part.std_error
                part["conf_high"] = part.estimate + c * part.std_error
        elif eff == "ran_pars":
            part = _tidy_ran_pars(model)
        else:
            part = _tidy_ran_levels(model, eff, conf_int, crit)
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    cols = ["effect", "group", "level", "term", "estimate", "std_error", "statistic", "df", "p_value",
            "conf_low", "conf_high"]
    return out[[c for c in cols if c in out.columns]]


def _tidy_ran_pars(model) -> pd.DataFrame:
    """broom.mixed's ``ran_pars`` rows: SDs and correlations of every block (``varcorr``), then the
    residual SD of a linear model."""
    rows = []
    for _, r in model.varcorr.iterrows():
        if r.grp == "Residual":
            rows.append(("Residual", "sd__Observation", r.sdcor))
        elif pd.isna(r.var2):
            rows.append((r.grp, f"sd__{r.var1}", r.sdcor))
        else:
            rows.append((r.grp, f"cor__{r.var1}.{r.var2}", r.sdcor))
    part = pd.DataFrame(rows, columns=["group", "term", "estimate"])
    part.insert(0, "effect", "ran_pars")
    return part


def _tidy_ran_levels(model, eff: str, conf_int: bool, crit: float) -> pd.DataFrame:
    """broom.mixed's ``ran_vals`` (conditional modes with their conditional SDs and, if asked, normal
    intervals) or ``ran_coefs`` rows: one per level and term, factor by factor in lme4's order."""
    names = [t.name for t in model.terms]

    def by_factor(tables):
        return tables if isinstance(tables, dict) else {names[0]: tables}

    tables = model._ranef_tables() if eff == "ran_vals" else by_factor(model.coef)
    ses = by_factor(model.se_ranef) if eff == "ran_vals" else None
    longs = []
    for g in names:
        long = tables[g].stack().rename("estimate").reset_index()
        long.columns = ["level", "term", "estimate"]
        if ses is not None:
            long["std_error"] = ses[g].stack().to_numpy()
            if conf_int:
                long["conf_low"] = long.estimate - crit * long.std_error
                long["conf_high"] = long.estimate + crit * long.std_error
        long.insert(0, "group", g)
        longs.append(long)
    part = pd.concat(longs, ignore_index=True)
    part.insert(0, "effect", eff)
    return part


def _effects_list(effects) -> list[str]:
    if effects is None:
        effects = ["fixed", "ran_pars"]
    elif isinstance(effects, str):
        effects = [effects]
    effects = list(effects)
    bad = [e for e in effects if e not in _LMER_EFFECTS]
    if bad:
        raise ValueError(f"Unknown effects {bad}; choose from {list(_LMER_EFFECTS)}.")
    return effects


def _tidy_glmer(model: GlmerResult, effects, conf_int: bool, conf_level: float, exponentiate: bool) -> pd.DataFrame:
    effects = _effects_list(effects)
    link = model.family.link.name
    if exponentiate and link not in ("logit", "log"):
        raise ValueError(f"exponentiate=True gives odds ratios (logit link) or rate ratios (log link); "
                         f"exp(beta) has no such meaning with the {link} link.")
    crit = stats.norm.ppf(0.5 + conf_level / 2)
    parts = []
    for eff in effects:
        if eff == "fixed":
            fe, se = model.fixef.to_numpy(), model.se_fixef.to_numpy()
            part = pd.DataFrame({"effect": "fixed", "group": None, "term": model.x_names, "estimate": fe,
                                 "std_error": se, "statistic": fe / se, "p_value": model.pvalues.to_numpy()})
            if conf_int:
                part["conf_low"], part["conf_high"] = fe - crit * se, fe + crit * se
            if exponentiate:
                part["estimate"] = np.exp(fe)
                part["std_error"] = np.exp(fe) * se
                if conf_int:
                    part["conf_low"], part["conf_high"] = np.exp(part.conf_low), np.exp(part.conf_high)
        elif eff == "ran_pars":
            part = _tidy_ran_pars(model)
        else:
            part = _tidy_ran_levels(model, eff, conf_int, crit)
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    cols = ["effect", "group", "level", "term", "estimate", "std_error", "statistic", "p_value", "conf_low",
            "conf_high"]
    return out[[c for c in cols if c in out.columns]]


def glance(model) -> pd.DataFrame:
    """One-row model summary, as ``broom::glance``: nobs, sigma, logLik, AIC, BIC, df.residual."""
    if not isinstance(model, (LmResult, LmerResult, GlmerResult)):
        raise TypeError(f"glance() needs a model fitted by lm(), lmer() or glmer(), got {type(model).__name__}.")
    row = {"nobs": model.nobs, "sigma": model.sigma, "loglik": model.loglik, "aic": model.aic,
           "bic": model.bic, "df_residual": model.df_resid}
    if isinstance(model, GlmerResult):
        row["deviance"] = model.deviance  # broom.mixed: deviance(m), the conditional deviance
    elif isinstance(model, LmerResult):
        row["reml_criterion" if model.REML else "deviance"] = model.opt.fun
    else:
        row["r_squared"] = model.r_squared
    return pd.DataFrame([row])


def _named_models(models: tuple, named: dict) -> dict:
    out = {}
    for i, m in enumerate(models, start=1):
        out[f"model{i}"] = m
    out.update(named)
    if not out:
        raise ValueError("Give at least one model.")
    for name, m in out.items():
        if not isinstance(m, (LmResult, LmerResult, GlmerResult)):
            raise TypeError(f"{name} is not a model fitted by lm(), lmer() or glmer() ({type(m).__name__}).")
    kinds = {isinstance(m, GlmerResult) for m in out.values()}
    if len(kinds) > 1:
        raise ValueError("glmer fits cannot be compared with lm or lmer fits: their likelihoods are for "
                         "different response distributions.")
    if True in kinds and len(out) > 1:
        first = next(iter(out.values()))
        for name, m in out.items():
            if m.family != first.family or m.nobs != first.nobs or not (
                    np.array_equal(m.resp.y, first.resp.y) and np.array_equal(m.resp.pw, first.resp.pw)):
                raise ValueError(f"{name} was not fitted to the same response and family as the first model; "
                                 "likelihoods are comparable only for the same data.")
    nobs = {m.nobs for m in out.values()}
    if len(out) > 1 and len(nobs) > 1:
        raise ValueError(f"Models were fitted to different numbers of observations ({sorted(nobs)}); "
                         "information criteria are not comparable.")
    return out


def _ic_table(models, named, which: str):
    ms = _named_models(models, named)
    if len(ms) == 1:
        return float(getattr(next(iter(ms.values())), which))
    return pd.DataFrame({"df": [m.npar for m in ms.values()],
                         which.upper(): [getattr(m, which) for m in ms.values()]}, index=list(ms))


def bic(*models, **named) -> float | pd.DataFrame:
    """BIC of one model (a number) or a table for several, as R's ``BIC(m1, m2)``.

    Name the rows with keywords: ``bic(complete=m1, state_fe=m2)``.

    Examples
    --------
    >>> from mlmhelpers import lm, bic, load_arrests
    >>> d = load_arrests()
    >>> bic(pooled=lm("violent_arrest_per1000 ~ pop_pct_pov", d),
    ...     state_fe=lm("violent_arrest_per1000 ~ pop_pct_pov + factor(stusps)", d)).round(2)
              df       BIC
    pooled     3  24507.84
    state_fe  53  23917.00
    """
    return _ic_table(models, named, "bic")


def aic(*models, **named) -> float | pd.DataFrame:
    """AIC of one model (a number) or a table for several, as R's ``AIC(m1, m2)``."""
    return _ic_table(models, named, "aic")


def anova(*models, refit: bool = True, ddf: str = "Satterthwaite", **named) -> pd.DataFrame:
    """Likelihood-ratio tests of nested mixed models (lme4's ``anova(m0, m1)``), or lmerTest's F table of one.

    With several models: models are ordered by their number of parameters.
    As in lme4, REML fits are refitted by maximum likelihood first
    (``refit=True``), because REML criteria of models with different fixed
    effects are not comparable.
    ``glmer`` fits (always maximum likelihood) are compared as they are; they
    must share the response and family.

    With one ``lmer`` model: lmerTest's type III table, one F test per
    fixed-effect term with ``ddf`` ("Satterthwaite" or "Kenward-Roger")
    denominator df (see :func:`mlmhelpers.lmertest.anova_type3`).

    Returns
    -------
    DataFrame
        Several models: ``npar, AIC, BIC, logLik, deviance, Chisq, Df,
        Pr(>Chisq)``. One model: ``Sum Sq, Mean Sq, NumDF, DenDF, F value,
        Pr(>F)``, indexed by term.

    Notes
    -----
    R equivalents: ``anova(m0, m1)`` (lme4) and ``anova(m, ddf = "Satterthwaite")``
    (lmerTest, type III).
    """
    if len(models) + len(named) == 1:
        only = (list(models) + list(named.values()))[0]
        if isinstance(only, LmerResult):
            from .lmertest import anova_type3

            return anova_type3(only, ddf=ddf)
    ms = _named_models(models, named)
    if len(ms) < 2:
        raise ValueError("anova() compares at least two models.")
    fitted = {}
    for name, m in ms.items():
        if isinstance(m, LmerResult) and m.REML and refit:
            # The ML refit reuses the fit's design; what it would warn about is said once, naming
            # the model, at the user's call of anova().
            m = m._refit(REML=False)
            if m.is_singular:
                warn(f"refitting {name!r} by maximum likelihood: boundary (singular) fit: "
                     "see help('isSingular')", SingularFitWarning)
            elif not m.converged:
                warn(f"refitting {name!r} by maximum likelihood: {m.opt.message}", ConvergenceWarning)
        fitted[name] = m
    order = sorted(fitted, key=lambda k: fitted[k].npar)
    rows, prev = [], None
    for name in order:
        m = fitted[name]
        dev = -2 * m.loglik
        row = {"npar": m.npar, "AIC": m.aic, "BIC": m.bic, "logLik": m.loglik, "deviance": dev,
               "Chisq": np.nan, "Df": np.nan, "Pr(>Chisq)": np.nan}
        if prev is not None:
            chisq = max(prev[1] - dev, 0.0)
            df = m.npar - prev[0]
            row.update({"Chisq": chisq, "Df": df, "Pr(>Chisq)": stats.chi2.sf(chisq, df) if df > 0 else np.nan})
        rows.append(row)
        prev = (m.npar, dev)
    return pd.DataFrame(rows, index=order)


def _model_frame(m: LmerResult) -> pd.DataFrame:
    frame = m.data
    if frame is None:
        raise ValueError("This model does not keep its data; refit it with REML=False yourself.")
    return frame


def shrinkage_table(no_pooling: LmResult, multilevel: LmerResult) -> pd.DataFrame:
    """Compare no-pooling and partial-pooling intercepts group by group.

    Parameters
    ----------
    no_pooling : LmResult
        ``lm(y ~ x + factor(g))``: one free intercept per group.
    multilevel : LmerResult
        ``lmer(y ~ x + (1 | g))`` on the same data.

    Returns
    -------
    DataFrame
        Indexed by group: ``n`` (observations), ``no_pooling`` and
        ``partial_pooling`` intercepts, ``overall`` (the multilevel fixed
        intercept), ``shift`` (partial − no pooling), ``distance`` (no pooling
        − overall) and ``shrinkage_factor``, the weight
        ``n σ²_α / (n σ²_α + σ²)`` a group's own data get in a
        random-intercept model (1 = no shrinkage, 0 = complete pooling).
    """
    from .inference import group_intercepts

    if not isinstance(multilevel, LmerResult):
        raise TypeError("multilevel must be a model fitted by lmer().")
    g = multilevel.design.group_name
    if list(multilevel.ranef.columns) != ["(Intercept)"]:
        raise ValueError("shrinkage_table() needs a random-intercept-only model, e.g. y ~ x + (1 | g).")
    nop = group_intercepts(no_pooling, g)
    part = multilevel.coef["(Intercept)"]
    part.index = part.index.astype(str)
    overall = float(multilevel.fixef["(Intercept)"])
    out = pd.DataFrame({"n": nop["n"], "no_pooling": nop["estimate"]})
    out["partial_pooling"] = part.reindex(out.index)
    out["overall"] = overall
    out["shift"] = out.partial_pooling - out.no_pooling
    out["distance"] = out.no_pooling - overall
    s2a = float(multilevel.varcorr.vcov.iloc[0])
    s2 = multilevel.sigma**2
    out["shrinkage_factor"] = out.n * s2a / (out.n * s2a + s2)
    return out
