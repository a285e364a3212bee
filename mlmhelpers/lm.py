"""Ordinary least squares with R's ``lm`` conventions (statsmodels underneath)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm

from .formula import DesignMatrices, ParsedFormula, build_design, new_fixed_matrix, parse_formula
from .rprint import format_table, r_format

__all__ = ["lm", "LmResult"]


@dataclass(eq=False)
class LmResult:
    """A linear model fitted by :func:`mlmhelpers.lm`.

    Coefficient names follow R (``(Intercept)``, ``factor(stusps)AL``), and
    ``loglik``/``aic``/``bic`` count σ as a parameter, as R's ``logLik.lm``
    does (statsmodels' ``bic`` does not). The statsmodels results object is
    available as ``.sm`` for anything else.
    """

    parsed: ParsedFormula
    design: DesignMatrices
    sm: object
    data_name: str = "data"

    @property
    def formula(self) -> str:
        return self.parsed.formula

    @property
    def coef(self) -> pd.Series:
        """Estimated coefficients (R: ``coef(m)``)."""
        return pd.Series(np.asarray(self.sm.params), index=self.design.x_names, name="estimate")

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance of the coefficients (R: ``vcov(m)``)."""
        names = self.design.x_names
        return pd.DataFrame(np.asarray(self.sm.cov_params()), index=names, columns=names)

    @property
    def se_coef(self) -> pd.Series:
        """Standard errors (R: ``arm::se.coef(m)``)."""
        return pd.Series(np.asarray(self.sm.bse), index=self.design.x_names, name="std_error")

    @property
    def tvalues(self) -> pd.Series:
        return pd.Series(np.asarray(self.sm.tvalues), index=self.design.x_names, name="statistic")

    @property
    def pvalues(self) -> pd.Series:
        return pd.Series(np.asarray(self.sm.pvalues), index=self.design.x_names, name="p_value")

    @property
    def nobs(self) -> int:
        return int(self.sm.nobs)

    @property
    def df_resid(self) -> int:
        return int(round(self.sm.df_resid))

    @property
    def sigma(self) -> float:
        """Residual standard error (R: ``sigma(m)``)."""
        return float(np.sqrt(self.sm.scale))

    @property
    def r_squared(self) -> float:
        return float(self.sm.rsquared)

    @property
    def npar(self) -> int:
        """Parameters counted by R's ``logLik`` df: coefficients plus σ."""
        return len(self.design.x_names) + 1

    @property
    def loglik(self) -> float:
        """Log-likelihood at the ML estimate of σ (R: ``logLik(m)``)."""
        return float(self.sm.llf)

    @property
    def aic(self) -> float:
        """R's ``AIC(m)``."""
        return -2.0 * self.loglik + 2.0 * self.npar

    @property
    def bic(self) -> float:
        """R's ``BIC(m)``: σ counted, unlike statsmodels' ``bic``."""
        return -2.0 * self.loglik + np.log(self.nobs) * self.npar

    @property
    def fitted(self) -> pd.Series:
        return pd.Series(np.asarray(self.sm.fittedvalues), index=self.design.row_index, name="fitted")

    def residuals(self) -> pd.Series:
        return pd.Series(np.asarray(self.sm.resid), index=self.design.row_index, name="resid")

    def predict(self, newdata: pd.DataFrame | None = None) -> pd.Series:
        """Predictions ``Xβ̂`` (R: ``predict(m, newdata)``)."""
        if newdata is None:
            return self.fitted.rename("prediction")
        if not isinstance(newdata, pd.DataFrame):
            raise TypeError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}.")
        X = new_fixed_matrix(self.design, newdata)
        return pd.Series(X @ np.asarray(self.sm.params), index=newdata.index, name="prediction")

    def summary(self) -> str:
        """A compact version of R's ``summary(lm)`` coefficient table."""
        est, se, t, p = (self.coef.to_numpy(), self.se_coef.to_numpy(), self.tvalues.to_numpy(),
                         self.pvalues.to_numpy())
        k = len(est)
        both = r_format(np.concatenate([est, se]), 4)
        rows = [[both[i], both[k + i], f"{t[i]:.3f}", f"{p[i]:.3g}"] for i in range(k)]
        lines = [f"Call: lm({self.formula}, data = {self.data_name})", "", "Coefficients:",
                 format_table(rows, header=["Estimate", "Std. Error", "t value", "Pr(>|t|)"],
                              row_names=self.design.x_names), "",
                 f"Residual standard error: {self.sigma:.4g} on {self.df_resid} degrees of freedom",
                 f"Multiple R-squared: {self.r_squared:.4g}"]
        return "\n".join(lines)

    def __repr__(self) -> str:
        fe = self.coef
        return "\n".join([f"Call: lm({self.formula})", "Coefficients:",
                          format_table([r_format(fe.to_numpy(), 5)], header=list(fe.index))])


def lm(formula: str, data: pd.DataFrame, *, data_name: str | None = None) -> LmResult:
    """Fit a linear model by ordinary least squares, as R's ``lm``.

    Parameters
    ----------
    formula : str
        e.g. ``"y ~ x + factor(g)"``; ``factor(g)`` is a synonym of ``C(g)``
        and the dummy columns are named as R names them (``factor(g)b``).
    data : DataFrame
        Never modified; rows with missing values in model variables are
        dropped with a warning (R's ``na.omit``).

    Returns
    -------
    LmResult

    Notes
    -----
    R equivalent: ``lm(formula, data)``; ``tidy(m)`` matches
    ``broom::tidy(m)`` and ``m.bic`` matches ``BIC(m)``.

    Examples
    --------
    >>> from mlmhelpers import lm, load_arrests
    >>> m = lm("violent_arrest_per1000 ~ pop_pct_pov", load_arrests())
    >>> print(f"{m.bic:.2f}")
    24507.84
    """
    parsed = parse_formula(formula)
    design = build_design(parsed, data, require_random=False)
    if design.X.shape[1] >= design.X.shape[0]:
        raise ValueError(f"{design.X.shape[1]} coefficients for {design.X.shape[0]} observations: too few observations.")
    fit = sm.OLS(design.y, design.X).fit()
    result = LmResult(parsed=parsed, design=design, sm=fit, data_name=data_name or "data")
    result._data = data  # a reference, never modified
    return result
