"""Fit linear mixed models with lme4's formula syntax and algorithm."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from .formula import DesignMatrices, ParsedFormula, build_design, parse_formula
from .messages import ConvergenceWarning, SingularFitWarning, warn
from .optimize import central_gradient, forward_gradient, optimize_theta
from .predictor import LinearPredictor
from .response import GaussianResponse, ScaledTheta
from .results import LmerResult

__all__ = ["lmer", "ConvergenceWarning", "SingularFitWarning"]


def lmer(formula: str, data: pd.DataFrame, REML: bool = True, *, data_name: str | None = None) -> LmerResult:
    """Fit a linear mixed model, as R's ``lme4::lmer``.

    Parameters
    ----------
    formula : str
        An lme4 formula, e.g. ``"y ~ x + (1 | g)"``. The fixed part may use
        anything formulaic understands (``C(g)`` or R's ``factor(g)``,
        interactions ``a:b`` and ``a*b``, ``0 +`` or ``- 1``, ``np.log(x)``).
        Random terms: ``(1 | g)``, ``(0 + x | g)``, ``(1 + x | g)``,
        ``(x | g)`` (intercept implied), ``(x || g)`` (uncorrelated),
        several terms for the same ``g``, factor-valued slopes
        ``(0 + f | g)``, and any number of grouping factors: crossed
        ``(1 | a) + (1 | b)``, nested ``(1 | a/b)`` (= ``(1 | a) + (1 | b:a)``,
        as lme4 expands it), interactions ``(1 | a:b)``, column names with
        spaces as ```(1 | `my group`)``` or ``(1 | Q("my group"))``.
        Factors are ordered as lme4 orders them (by decreasing number of
        levels).
    data : DataFrame
        The data; never modified. Rows with a missing value in a model
        variable are dropped with a warning that says how many (R's
        ``na.omit``).
    REML : bool, default True
        Must be a bool (``numpy.bool_`` accepted). Restricted maximum likelihood (lme4's default); ``False`` gives the
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
        values, empty data, ``REML`` not a bool, a duplicated random term,
        and lme4's checks with lme4's messages: a grouping factor with a
        single level, a factor with as many levels as observations, a term
        with at least as many random effects as observations.

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
    follow in closed form. The penalised least-squares step uses a blocked
    Cholesky factor (:mod:`mlmhelpers.predictor`); the criterion is minimised
    with L-BFGS-B (exact gradient for one grouping factor, central
    differences for several) and checked as lme4's ``checkConv``; see
    :mod:`mlmhelpers.optimize`.

    Examples
    --------
    >>> from mlmhelpers import lmer, load_arrests
    >>> m = lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", load_arrests())
    >>> round(m.reml_criterion, 1)
    23701.8
    >>> m.fixef.round(5).tolist()
    [1.86112, 0.1334]
    """
    if not isinstance(REML, (bool, np.bool_)):
        raise TypeError(f"REML must be True or False, got {REML!r} ({type(REML).__name__}).")
    parsed = parse_formula(formula)
    design = build_design(parsed, data, require_random=True)
    n, p = design.X.shape
    if p >= n:
        raise ValueError(f"{p} fixed effects for {n} observations: too few observations.")
    result = _fit(parsed, design, bool(REML), data_name or "data", data)
    if result.is_singular:
        warn("boundary (singular) fit: see help('isSingular')", SingularFitWarning)
    elif not result.opt.converged:
        warn(result.opt.message, ConvergenceWarning)
    return result


def _fit(parsed: ParsedFormula, design: DesignMatrices, reml: bool, data_name: str, data: pd.DataFrame | None,
         *, theta0=None, warn: bool = True, predictor: LinearPredictor | None = None) -> LmerResult:
    """Build the engine for ``design``, optimise θ, return the result (no warnings)."""
    lp = predictor if predictor is not None else LinearPredictor(design.X, design.terms, qr=design.x_qr)
    resp = GaussianResponse(lp, design.y, reml)
    scaled = ScaledTheta(lp)
    if scaled.is_identity:
        # Large crossed models of scalar terms: Newton's method with the average information,
        # from moment estimates (see GaussianResponse.objective_gradient_information).
        newton = resp.has_information
        if theta0 is not None:
            start = np.asarray(theta0, dtype=float)
        else:
            start = resp.moment_start() if newton else lp.theta0
        opt = optimize_theta(resp.objective, resp.objective_and_gradient, theta0=start, is_diag=lp.is_diag,
                             canonical=lp.canonical, hess_step=1e-5 if resp.exact_gradient else 1e-3,
                             gtol=1e-8 if resp.exact_gradient else 1e-6,
                             search_gradient=None if resp.exact_gradient else
                             (lambda th: forward_gradient(resp.objective, th)),
                             newton=resp.objective_gradient_information if newton else None)
    else:
        # Search in the better-conditioned θ̃ (Λ = T L(θ̃)), report lme4's θ.
        def f(th):
            return resp.objective_lambdas(scaled.lambdas(th))

        def fg(th):
            if not resp.exact_gradient:
                return central_gradient(f, th)
            val, G = resp.objective_and_gradient_matrix(scaled.lambdas(th))
            tmap = lp.terms[0].tmap
            return val, (scaled.T[0].T @ G)[tmap.rows, tmap.cols]

        start = lp.theta0 if theta0 is None else scaled.from_theta(np.asarray(theta0, dtype=float))
        opt = optimize_theta(f, fg, theta0=start, is_diag=lp.is_diag, canonical=lp.canonical,
                             hess_step=1e-5 if resp.exact_gradient else 1e-3,
                             gtol=1e-8 if resp.exact_gradient else 1e-6,
                             search_gradient=None if resp.exact_gradient else (lambda th: forward_gradient(f, th)))
        opt = replace(opt, theta=scaled.to_theta(opt.theta), theta_search=opt.theta)
    sol = resp.pls(opt.theta)
    return LmerResult(parsed=parsed, design=design, predictor=lp, response=resp, sol=sol, opt=opt, REML=reml,
                      data_name=data_name, data=data)
