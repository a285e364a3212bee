"""Fit linear mixed models with lme4's formula syntax and algorithm."""

from __future__ import annotations

import warnings

import pandas as pd

from .engine import ThetaMap, optimize_theta, pls, sufficient_stats
from .formula import build_design, parse_formula
from .results import LmerResult

__all__ = ["lmer", "ConvergenceWarning", "SingularFitWarning"]


class ConvergenceWarning(UserWarning):
    """The optimiser's answer failed lme4's gradient check."""


class SingularFitWarning(UserWarning):
    """The fit is on the boundary of the parameter space (``isSingular``)."""


def lmer(formula: str, data: pd.DataFrame, REML: bool = True, *, data_name: str | None = None) -> LmerResult:
    """Fit a linear mixed model, as R's ``lme4::lmer``.

    Parameters
    ----------
    formula : str
        An lme4 formula, e.g. ``"y ~ x + (1 | g)"``. The fixed part may use
        anything formulaic understands (``C(g)`` or R's ``factor(g)``,
        interactions ``a:b`` and ``a*b``, ``0 +`` or ``- 1``, ``np.log(x)``).
        Random terms: ``(1 | g)``, ``(0 + x | g)``, ``(1 + x | g)``,
        ``(x | g)`` (intercept implied), ``(x || g)`` (uncorrelated), and
        several terms for the same ``g``. One grouping factor per model.
    data : DataFrame
        The data; never modified. Rows with a missing value in a model
        variable are dropped with a warning that says how many (R's
        ``na.omit``).
    REML : bool, default True
        Restricted maximum likelihood (lme4's default); ``False`` gives the
        maximum-likelihood fit, needed to compare models with different fixed
        effects.
    data_name : str, optional
        Name shown after ``Data:`` in ``summary()``.

    Returns
    -------
    LmerResult

    Raises
    ------
    ValueError, TypeError
        Malformed formula, unknown column, non-numeric response, infinite
        values, a grouping factor with a single level, empty data.
    NotImplementedError
        More than one grouping factor.

    Warns
    -----
    SingularFitWarning
        ``boundary (singular) fit``: a variance is estimated as zero or a
        correlation as ±1 (R's ``isSingular()``).
    ConvergenceWarning
        The gradient check at the optimum failed after restarts.

    Notes
    -----
    R equivalent: ``lme4::lmer(formula, data, REML = TRUE)``.

    The criterion is lme4's profiled REML criterion (or deviance) as a
    function of the relative covariance factor θ (Bates, Mächler, Bolker &
    Walker 2015, *J. Stat. Softw.* 67(1)); β̂, σ̂ and the conditional modes
    follow in closed form. It is minimised with L-BFGS-B and polished with a
    bounded Powell search; see :mod:`mlmhelpers.engine`.

    Examples
    --------
    >>> from mlmhelpers import lmer, load_arrests
    >>> m = lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", load_arrests())
    >>> round(m.reml_criterion, 1)
    23701.8
    >>> m.fixef.round(5).tolist()
    [1.86112, 0.1334]
    """
    parsed = parse_formula(formula)
    design = build_design(parsed, data, require_random=True)
    q = design.Z.shape[1]
    tmap = ThetaMap(q, design.z_blocks)
    stats = sufficient_stats(design.y, design.X, design.Z, design.groups, len(design.levels))
    if design.X.shape[1] >= design.X.shape[0]:
        raise ValueError(f"{design.X.shape[1]} fixed effects for {design.X.shape[0]} observations: too few observations.")
    opt = optimize_theta(stats, tmap, reml=REML)
    sol = pls(opt.theta, stats, tmap)
    result = LmerResult(parsed=parsed, design=design, tmap=tmap, sol=sol, opt=opt, REML=bool(REML),
                        data_name=data_name or "data")
    result._stats_cache = stats
    result._data = data  # a reference, for anova() refits; never modified
    if result.is_singular:
        warnings.warn("boundary (singular) fit: see help('isSingular')", SingularFitWarning, stacklevel=2)
    elif not opt.converged:
        warnings.warn(opt.message, ConvergenceWarning, stacklevel=2)
    return result
