"""The fitted linear mixed model: lme4's accessors on one result object."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.linalg import cho_solve

from .design import RandomEffectsTerm, ThetaMap
from .formula import DesignMatrices, ParsedFormula, new_factor_codes, new_fixed_matrix, new_random_matrix, parse_formula
from .optimize import OptimResult
from .predictor import LinearPredictor, PLSSolution
from .response import GaussianResponse
from .rprint import abbreviate, format_table, r_format

#: lme4's ``isSingular()`` tolerance on the diagonal of Λ.
SINGULAR_TOL = 1e-4

__all__ = ["LmerResult", "NotAvailableError"]


class NotAvailableError(ValueError, AttributeError):
    """A quantity that is not defined for this kind of fit (e.g. ``deviance`` of a REML fit).

    It is a ``ValueError`` and, so that ``hasattr()`` answers ``False``
    instead of raising, an ``AttributeError``.
    """


def _is_na_re_form(re_form) -> bool:
    """Whether ``re_form`` excludes every random effect (R's ``re.form = NA`` or ``~0``)."""
    if re_form is None:
        return False
    if isinstance(re_form, str):
        s = re_form.replace(" ", "")
        if s in ("~0", "NA", "~-1"):
            return True
        if s.startswith("~") and "|" in s:
            return False
        raise ValueError(
            f"re_form={re_form!r} is not supported: use None (include the random effects, "
            "R's re.form = NULL), '~0' (exclude them, R's re.form = NA) or a formula of "
            "random terms such as '~(1 | stusps)' (include only those grouping factors)."
        )
    if isinstance(re_form, float) and np.isnan(re_form):
        return True
    if re_form is pd.NA or re_form is False:
        return True
    raise ValueError(f"re_form={re_form!r} is not supported: use None, '~0' or '~(1 | g)'.")


def _re_form_factors(re_form, terms: list[RandomEffectsTerm]) -> set[str]:
    """Names of the grouping factors whose random effects ``re_form`` includes."""
    if _is_na_re_form(re_form):
        return set()
    names = {t.name for t in terms}
    if re_form is None:
        return names
    parsed = parse_formula("y " + re_form.strip())
    wanted = {name for t in parsed.random for name, _ in t.factors()}
    bad = sorted(wanted - names)
    if bad:
        raise ValueError(f"re_form names grouping factor(s) {bad} not in the model; its factors are "
                         f"{sorted(names)}.")
    return wanted


def theta_names(terms: list[RandomEffectsTerm]) -> list[str]:
    """lme4's names for θ: ``"g.(Intercept)"`` for a diagonal entry, ``"g.x.(Intercept)"`` below it."""
    names = []
    for t in terms:
        for r, c in zip(t.tmap.rows, t.tmap.cols, strict=True):
            zr, zc = t.z_names[r], t.z_names[c]
            names.append(f"{t.name}.{zr}" if r == c else f"{t.name}.{zr}.{zc}")
    return names


def varcorr_lines(blocks: list[tuple[str, list[str], np.ndarray]], residual_sd: float | None,
                  sd_only: bool = False) -> list[str]:
    """lme4's "Random effects:" table (``print(VarCorr(m))``), line by line.

    ``blocks`` are (group label, column names, covariance matrix); ``residual_sd``
    adds the "Residual" row (``None`` for a GLMM, which has none).
    """
    rows, variances, sds, corrs = [], [], [], []
    max_q = max(len(n) for _, n, _ in blocks)
    for label, names, cov in blocks:
        sd = np.sqrt(np.diag(cov))
        for i, n in enumerate(names):
            rows.append([label if i == 0 else "", n])
            variances.append(cov[i, i])
            sds.append(sd[i])
            corrs.append([f"{cov[i, j] / (sd[i] * sd[j]):.2f}" if sd[i] > 0 and sd[j] > 0 else "NaN"
                          for j in range(i)])
    if residual_sd is not None:
        rows.append(["Residual", ""])
        variances.append(residual_sd**2)
        sds.append(residual_sd)
        corrs.append([])
    # R pads each formatted column to a common width, then prints the
    # character matrix left-aligned.
    v_str = _pad(r_format(variances, 4))
    s_str = _pad(r_format(sds, 4))
    header = ["Groups", "Name"] + (["Std.Dev."] if sd_only else ["Variance", "Std.Dev."])
    has_corr = max_q > 1
    if has_corr:
        header += ["Corr"] + [""] * (max_q - 2)
    table = []
    for r, v, s, c in zip(rows, v_str, s_str, corrs, strict=True):
        line = r + ([s] if sd_only else [v, s])
        if has_corr:
            line += c + [""] * (max_q - 1 - len(c))
        table.append(line)
    text = format_table(table, header=header, align=["l"] * len(header))
    return [" " + line for line in text.split("\n")]


class InformationCriteria:
    """AIC and BIC from the criterion at the optimum (``opt.fun`` = −2 logLik), ``npar`` and ``nobs``.

    Shared by :class:`LmerResult` and :class:`~mlmhelpers.glmer_result.GlmerResult`.
    """

    @property
    def aic(self) -> float:
        """R's ``AIC(m)``: −2 logLik + 2 × npar."""
        return self.opt.fun + 2 * self.npar

    @property
    def bic(self) -> float:
        """R's ``BIC(m)``: −2 logLik + log(n) × npar."""
        return self.opt.fun + np.log(self.nobs) * self.npar


class MixedModelResult(InformationCriteria):
    """lme4's accessors shared by :class:`LmerResult` and :class:`~mlmhelpers.glmer_result.GlmerResult`.

    Computed from a few hooks each fit provides: ``terms``, ``design``
    (``x_names``), ``opt`` (``converged``), ``sigma`` (1 for a GLMM),
    :meth:`_theta_hat`, :meth:`_beta_hat`, :meth:`_lambdas` (Λ per term),
    :meth:`_b_blocks` (the conditional modes ``b`` per term, levels × k),
    :meth:`_unscaled_condvar_blocks` (``(ΛᵀZᵀWZΛ + I)⁻¹`` blocks mapped by
    Λ, per term) and :meth:`_residual_sd` (``None`` without a residual
    variance). With one grouping factor ``ranef``, ``se_ranef``, ``coef`` and
    ``condvar`` are single tables; with several, dicts keyed by the factor's
    name (lme4's named lists), in lme4's order.
    """

    # ----------------------------------------------------------------- hooks
    def _theta_hat(self) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _beta_hat(self) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _lambdas(self) -> list[np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _b_blocks(self) -> list[np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _unscaled_condvar_blocks(self) -> list[np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _residual_sd(self) -> float | None:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ basics
    @property
    def ngroups(self) -> pd.Series:
        """Number of levels of each grouping factor (R: ``ngrps(m)``), in lme4's order."""
        return pd.Series({t.name: t.nlevels for t in self.terms}, dtype=int)

    @property
    def x_names(self) -> list[str]:
        """Names of the fixed effects, R's spelling."""
        return list(self.design.x_names)

    @property
    def n_theta(self) -> int:
        """Number of covariance parameters θ."""
        return len(self._theta_hat())

    @property
    def converged(self) -> bool:
        """Whether the optimum passed the convergence check."""
        return bool(self.opt.converged)

    @property
    def theta(self) -> pd.Series:
        """Relative covariance parameters (R: ``getME(m, "theta")``)."""
        return pd.Series(self._theta_hat(), index=theta_names(self.terms), name="theta")

    @property
    def is_singular(self) -> bool:
        """Whether the fit is on the boundary (R: ``isSingular(m)``, tol = 1e-4), any block."""
        is_diag = np.concatenate([t.tmap.is_diag for t in self.terms])
        return bool(np.any(self._theta_hat()[is_diag] < SINGULAR_TOL))

    # ---------------------------------------------------------- fixed effects
    @property
    def fixef(self) -> pd.Series:
        """Fixed-effect estimates β̂ (R: ``fixef(m)``)."""
        return pd.Series(self._beta_hat(), index=self.x_names, name="estimate")

    @property
    def se_fixef(self) -> pd.Series:
        """Standard errors of β̂ (R: ``arm::se.fixef(m)``)."""
        return pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=self.x_names, name="std_error")

    # --------------------------------------------------------- random effects
    @staticmethod
    def _per_factor(tables: dict):
        return next(iter(tables.values())) if len(tables) == 1 else tables

    def _ranef_tables(self) -> dict[str, pd.DataFrame]:
        return {t.name: pd.DataFrame(b, index=t.levels, columns=t.z_names)
                for t, b in zip(self.terms, self._b_blocks(), strict=True)}

    @property
    def ranef(self) -> pd.DataFrame | dict[str, pd.DataFrame]:
        """Conditional modes of the random effects, levels × terms (R: ``ranef(m)``).

        One DataFrame for a one-factor model (R's ``ranef(m)$g``); a dict of
        them keyed by factor name for several.
        """
        return self._per_factor(self._ranef_tables())

    def _condvar_list(self) -> list[np.ndarray]:
        s2 = self.sigma**2
        return [s2 * blk for blk in self._unscaled_condvar_blocks()]

    @property
    def condvar(self) -> np.ndarray | dict[str, np.ndarray]:
        """Conditional covariance matrices of the random effects, shape (levels, k, k).

        lme4's ``ranef(m, condVar = TRUE)`` ``postVar`` (for a GLMM at the IRLS
        weights of the modes); a dict by factor for several factors.
        """
        cv = self._condvar_list()
        return cv[0] if len(cv) == 1 else {t.name: c for t, c in zip(self.terms, cv, strict=True)}

    @property
    def se_ranef(self) -> pd.DataFrame | dict[str, pd.DataFrame]:
        """Conditional standard deviations of the random effects (R: ``arm::se.ranef(m)``)."""
        out = {}
        for t, cv in zip(self.terms, self._condvar_list(), strict=True):
            sd = np.sqrt(np.diagonal(cv, axis1=1, axis2=2))
            out[t.name] = pd.DataFrame(sd, index=t.levels, columns=t.z_names)
        return self._per_factor(out)

    @property
    def coef(self) -> pd.DataFrame | dict[str, pd.DataFrame]:
        """Fixed plus random effects for every level (R: ``coef(m)``).

        Columns are all fixed effects, in the order of ``fixef``; a random
        term without a matching fixed effect (e.g. ``(0 + x | g)`` with no
        ``x`` in the fixed part) is appended, as lme4 does. A dict by factor
        for several factors (each factor's table adds only its own effects).
        """
        fe = self.fixef
        out = {}
        for name, re in self._ranef_tables().items():
            tab = pd.DataFrame(np.tile(fe.to_numpy(), (len(re), 1)), index=re.index, columns=fe.index)
            for col in re.columns:
                if col in tab.columns:
                    tab[col] = tab[col] + re[col]
                else:
                    tab[col] = re[col]
            out[name] = tab
        return self._per_factor(out)

    # ------------------------------------------------- variance components
    def _covariance_blocks(self) -> list[tuple[str, list[str], np.ndarray]]:
        """(lme4 label, column names, covariance) of every covariance block, in lme4's order."""
        s2 = self.sigma**2
        blocks = []
        for t, lam in zip(self.terms, self._lambdas(), strict=True):
            for label, (start, stop, _) in zip(t.block_labels(), t.blocks, strict=True):
                sub = lam[start:stop, start:stop]
                blocks.append((label, t.z_names[start:stop], s2 * sub @ sub.T))
        return blocks

    @property
    def varcorr(self) -> pd.DataFrame:
        """Variance components (R: ``as.data.frame(VarCorr(m))``).

        One row per variance (``var2`` missing) and per correlation, block
        by block in lme4's order, then the residual (none for a GLMM). As in
        lme4, a second covariance block of the same grouping factor
        (``(x || g)`` gives one block per term) is labelled ``g.1``.
        ``vcov`` holds variances and covariances; ``sdcor`` holds standard
        deviations and correlations.
        """
        rows = []
        for label, names, cov in self._covariance_blocks():
            sd = np.sqrt(np.diag(cov))
            for i, n in enumerate(names):
                rows.append((label, n, None, cov[i, i], sd[i]))
            for j in range(len(names)):
                for i in range(j + 1, len(names)):
                    corr = cov[i, j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else np.nan
                    rows.append((label, names[j], names[i], cov[i, j], corr))
        sigma = self._residual_sd()
        if sigma is not None:
            rows.append(("Residual", None, None, sigma**2, sigma))
        out = pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])
        text = pd.StringDtype(na_value=np.nan)  # missing names print as NaN, like R's NA
        return out.astype({"grp": text, "var1": text, "var2": text})

    # ----------------------------------------------------------- printing
    def _groups_line(self) -> str:
        groups = "; ".join(f"{t.name}, {t.nlevels}" for t in self.terms)
        return f"Number of obs: {self.nobs}, groups:  {groups}"

    def _varcorr_lines(self, sd_only: bool = False) -> list[str]:
        return varcorr_lines(self._covariance_blocks(), self._residual_sd(), sd_only)


@dataclass(eq=False)
class LmerResult(MixedModelResult):
    """A linear mixed model fitted by :func:`mlmhelpers.lmer`.

    The attribute and method names follow lme4 (``fixef``, ``ranef``,
    ``coef``, ``vcov``, ``sigma``, ``VarCorr`` → ``varcorr``, ``logLik`` →
    ``loglik``, ``AIC``/``BIC`` → ``aic``/``bic``) and arm (``se_fixef``,
    ``se_ranef``). Tables are pandas objects indexed by R-style names.

    With one grouping factor, ``ranef``, ``se_ranef``, ``coef`` and
    ``condvar`` are single tables; with several they are dicts keyed by the
    factor's name (lme4's named lists), in lme4's order.

    Everything the result needs is a declared field: the parsed formula, the
    design (``design``: y, X, the random-effects terms), the linear predictor
    and response (``predictor``, ``response``: the engine), the solution at
    the optimum (``sol``), the optimiser's report (``opt``) and a reference to
    the caller's data (``data``, never modified; used by ``anova`` refits).
    """

    parsed: ParsedFormula
    design: DesignMatrices
    predictor: LinearPredictor
    response: GaussianResponse
    sol: PLSSolution
    opt: OptimResult
    REML: bool
    data_name: str = "data"
    data: pd.DataFrame | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ basics
    @property
    def formula(self) -> str:
        return self.parsed.formula

    @property
    def terms(self) -> list[RandomEffectsTerm]:
        """The random-effects terms, one per grouping factor, in lme4's order."""
        return self.design.terms

    @property
    def tmap(self) -> ThetaMap:
        """θ ↔ Λ map of a one-factor model (see ``terms[i].tmap`` otherwise)."""
        return self.design._only_term("tmap").tmap

    @property
    def nobs(self) -> int:
        """Number of observations used in the fit (R: ``nobs(m)``)."""
        return int(self.sol.n)

    @property
    def ngrps(self) -> pd.Series:
        """The same as :attr:`ngroups` (lme4's name)."""
        return self.ngroups

    @property
    def group_sizes(self) -> pd.Series:
        """Observations per group of a one-factor model, indexed by group level."""
        t = self.design._only_term("group_sizes")
        counts = np.bincount(t.codes, minlength=t.nlevels)
        return pd.Series(counts, index=t.levels, name="n")

    @property
    def sigma(self) -> float:
        """Residual standard deviation σ (R: ``sigma(m)``)."""
        return self.sol.sigma(self.REML)

    # ---------------------------------------------------------- fixed effects
    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance of β̂, ``σ² (Xᵀ V⁻¹ X)⁻¹`` (R: ``vcov(m)``)."""
        p = len(self.sol.beta)
        v = self.sigma**2 * cho_solve((self.sol.RX, True), np.eye(p), check_finite=False)
        return pd.DataFrame(v, index=self.design.x_names, columns=self.design.x_names)

    # ------------------------------------------------------------------ hooks
    def _theta_hat(self) -> np.ndarray:
        return self.sol.theta

    def _beta_hat(self) -> np.ndarray:
        return self.sol.beta

    def _lambdas(self) -> list[np.ndarray]:
        return self.sol.Lambdas

    def _b_blocks(self) -> list[np.ndarray]:
        return self.sol.b_blocks()

    def _unscaled_condvar_blocks(self) -> list[np.ndarray]:
        return self.sol.factor.condvar_blocks()

    def _residual_sd(self) -> float:
        return self.sigma

    # ------------------------------------------------------- likelihood
    @property
    def npar(self) -> int:
        """Parameters counted by R's ``logLik`` df: β, θ and σ."""
        return len(self.sol.beta) + self.n_theta + 1

    @property
    def deviance(self) -> float:
        """−2 log-likelihood of an ML fit (R: ``deviance(m)``).

        Only defined for ``REML=False`` fits. For a REML fit lme4's
        ``deviance()`` is deprecated and ambiguous (it warns and returns the
        REML criterion); use ``reml_criterion`` or ``loglik``, or refit with
        ``REML=False``.
        """
        if self.REML:
            raise NotAvailableError(
                "deviance is defined for ML fits only; this is a REML fit: use reml_criterion "
                "(lme4's REMLcrit) or refit with lmer(..., REML=False)."
            )
        return self.opt.fun

    def criterion(self, theta) -> float:
        """The fit's profiled criterion at another ``theta``: REML criterion or ML deviance.

        The function the optimiser minimised (lme4: ``getME(m, "devfun")``);
        at ``m.theta`` it equals ``reml_criterion`` (REML fits) or
        ``deviance`` (ML fits). ``inf`` where undefined.
        """
        theta = np.atleast_1d(np.asarray(theta, dtype=float))
        if theta.shape != (self.n_theta,):
            raise ValueError(f"theta must have {self.n_theta} value(s), got {theta.size}.")
        return float(self.response.objective(theta))

    @property
    def reml_criterion(self) -> float:
        """The REML criterion at convergence (−2 × REML log-likelihood)."""
        if not self.REML:
            return self.sol.deviance(True)
        return self.opt.fun

    @property
    def loglik(self) -> float:
        """Log-likelihood (REML log-likelihood for a REML fit), as R's ``logLik(m)``."""
        return -0.5 * self.opt.fun

    @property
    def df_resid(self) -> int:
        return self.nobs - self.npar

    # ------------------------------------------------ engine (internal contract)
    def _pls_at(self, theta) -> PLSSolution:
        """The fit's PLS solution at another θ (same data, same REML flag)."""
        return self.response.pls(np.asarray(theta, dtype=float))

    def _zlambda(self, theta, u) -> np.ndarray:
        """``Z Λ_θ u`` (see :meth:`LinearPredictor.zlambda`)."""
        return self.predictor.zlambda(np.asarray(theta, dtype=float), u)

    def _refit(self, y=None, X=None, *, REML=None, theta0=None) -> LmerResult:
        """Refit with the same random-effects design; new response and/or fixed-effects matrix.

        No warnings are emitted: the result says ``converged`` and
        ``is_singular``. ``X``'s column names are the fit's if its number of
        columns is unchanged, else ``X1, X2, …``.
        """
        from dataclasses import replace

        from .fit import _fit

        d = self.design
        changes = {}
        if y is not None:
            y = np.asarray(y, dtype=float)
            if y.shape != d.y.shape:
                raise ValueError(f"y must have shape {d.y.shape}, got {y.shape}.")
            changes["y"] = y
        if X is not None:
            X = np.asarray(X, dtype=float)
            if X.ndim != 2 or X.shape[0] != d.X.shape[0]:
                raise ValueError(f"X must have {d.X.shape[0]} rows.")
            changes["X"] = X
            changes["x_qr"] = None
            changes["x_names"] = (list(d.x_names) if X.shape[1] == d.X.shape[1]
                                  else [f"X{i + 1}" for i in range(X.shape[1])])
        design = replace(d, **changes) if changes else d
        reml = self.REML if REML is None else REML
        predictor = self.predictor if X is None else None
        return _fit(self.parsed, design, reml, self.data_name, self.data, theta0=theta0, warn=False,
                    predictor=predictor)

    # ------------------------------------------------ fitted and residuals
    def _eta(self, X: np.ndarray, Zs: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """``Xβ`` plus each included factor's ``z_i · b[code_i]`` (code −1: no effect)."""
        eta = X @ self.sol.beta
        blocks = dict(zip([t.name for t in self.terms], self.sol.b_blocks(), strict=True))
        for name, (Z, codes) in Zs.items():
            known = codes >= 0
            eta[known] += np.einsum("nq,nq->n", Z[known], blocks[name][codes[known]])
        return eta

    @property
    def fitted(self) -> pd.Series:
        """Fitted values including the random effects (R: ``fitted(m)``)."""
        d = self.design
        Zs = {t.name: (t.Z, t.codes) for t in self.terms}
        return pd.Series(self._eta(d.X, Zs), index=d.row_index, name="fitted")

    def residuals(self, scaled: bool = False) -> pd.Series:
        """Response residuals ``y − fitted`` (R: ``residuals(m)``).

        ``scaled=True`` divides by σ (R: ``residuals(m, scaled = TRUE)``),
        the residuals ``summary()`` describes.
        """
        r = self.design.y - self.fitted.to_numpy()
        if scaled:
            r = r / self.sigma
        return pd.Series(r, index=self.design.row_index, name="scaled_resid" if scaled else "resid")

    def _new_codes(self, newdata: pd.DataFrame, names: set[str], allow_new_levels: bool) -> dict:
        """Per included factor: (Z of newdata, level codes), new levels checked."""
        out = {}
        for t in self.terms:
            if t.name not in names:
                continue
            codes = new_factor_codes(t, newdata)
            if (codes < 0).any() and not allow_new_levels:
                cols = list(t.columns)
                new = sorted(set(newdata.loc[codes < 0, cols].astype(str).agg(":".join, axis=1)))
                raise ValueError(
                    f"New level(s) {', '.join(new)} of {t.name!r} not in the fitted data; pass "
                    "allow_new_levels=True to predict them with random effects of zero."
                )
            out[t.name] = (new_random_matrix(t, newdata), codes)
        return out

    def predict(self, newdata: pd.DataFrame | None = None, re_form=None, allow_new_levels: bool = False) -> pd.Series:
        """Predictions, as R's ``predict(m, newdata, re.form, allow.new.levels)``.

        Parameters
        ----------
        newdata : DataFrame, optional
            Data to predict for; the fitted data if omitted.
        re_form : None, "~0" or a formula of random terms
            ``None`` (R's ``re.form = NULL``) adds every factor's random
            effects; ``"~0"`` (R's ``re.form = NA`` or ``~0``) gives the
            population-level prediction ``Xβ̂``; ``"~(1 | stusps)"`` adds
            only the named factors' effects.
        allow_new_levels : bool
            Whether a level absent from the fit is allowed; it gets random
            effects of zero for that factor, so a new county in a known state
            gets its state's effect.
        """
        names = _re_form_factors(re_form, self.terms)
        d = self.design
        if newdata is None:
            Zs = {t.name: (t.Z, t.codes) for t in self.terms if t.name in names}
            return pd.Series(self._eta(d.X, Zs), index=d.row_index, name="prediction")
        if not isinstance(newdata, pd.DataFrame):
            raise TypeError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}.")
        X = new_fixed_matrix(d, newdata)
        Zs = self._new_codes(newdata, names, allow_new_levels)
        return pd.Series(self._eta(X, Zs), index=newdata.index, name="prediction")

    # ----------------------------------------------------------- printing
    def _header(self) -> list[str]:
        how = "REML" if self.REML else "maximum likelihood "
        return [
            f"Linear mixed model fit by {how} ['lmerMod']",
            f"Formula: {self.formula}",
            f"   Data: {self.data_name}",
        ]

    def _fit_criteria(self) -> list[str]:
        if self.REML:
            # lme4's .prt.aictab rounds the criterion to one decimal.
            return [f"REML criterion at convergence: {self.opt.fun:.1f}"]
        vals = [self.aic, self.bic, self.loglik, self.deviance, float(self.df_resid)]
        names = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
        # lme4's .prt.aictab rounds the table to one decimal.
        cells = [f"{v:.1f}" if n != "df.resid" else str(int(v)) for n, v in zip(names, vals, strict=True)]
        return [format_table([cells], header=names)]

    def _scaled_residual_lines(self) -> list[str]:
        r = self.residuals(scaled=True).to_numpy()
        q = np.quantile(r, [0, 0.25, 0.5, 0.75, 1.0])
        cells = _pad(r_format(q, 4))
        return ["Scaled residuals: ", format_table([cells], header=["Min", "1Q", "Median", "3Q", "Max"])]

    def _fixef_lines(self) -> list[str]:
        fe, se = self.fixef.to_numpy(), self.se_fixef.to_numpy()
        t = fe / se
        both = np.concatenate([fe, se])
        acs = np.abs(both[np.isfinite(both) & (both != 0)])
        digmin = 1 + (np.floor(np.log10(acs.min())) if acs.size else 0)
        dec = max(1, int(4 - digmin))
        cs = r_format(np.round(both, dec), 4)
        tt = r_format(np.round(t, 3), 4)
        p = len(fe)
        table = [[cs[i], cs[p + i], tt[i]] for i in range(p)]
        return ["Fixed effects:", format_table(table, header=["Estimate", "Std. Error", "t value"],
                                               row_names=self.design.x_names)]

    def _corr_lines(self) -> list[str]:
        p = len(self.sol.beta)
        if p < 2:
            return []
        if p > 12:
            return [f"Correlation matrix not shown by default, as p = {p} > 12."]
        v = self.vcov.to_numpy()
        sd = np.sqrt(np.diag(v))
        corr = v / np.outer(sd, sd)
        names = self.design.x_names
        rows = []
        for i in range(1, p):
            rows.append([f"{np.round(corr[i, j], 3):.3f}" for j in range(i)] + [""] * (p - 1 - i))
        header = [abbreviate(n, 6) for n in names[:-1]]
        return ["Correlation of Fixed Effects:", format_table(rows, header=header, row_names=names[1:])]

    def summary(self, ddf: str | None = None) -> LmerSummary:
        """The lme4 ``summary(m)`` printout, as an object whose ``str`` is the text.

        ``ddf="Satterthwaite"`` or ``"Kenward-Roger"`` prints lmerTest's
        summary instead: the coefficient table gains ``df`` and ``Pr(>|t|)``
        (R: ``summary(m, ddf = ...)`` with lmerTest loaded); see
        :func:`mlmhelpers.contest`.
        """
        lines = self._header() + [""] + self._fit_criteria() + [""]
        if ddf is not None:
            from .lmertest import _check_ddf

            how = "Satterthwaite's" if _check_ddf(ddf) == "Satterthwaite" else "Kenward-Roger's"
            lines[0] = f"Linear mixed model fit by REML. t-tests use {how} method ['lmerModLmerTest']" \
                if self.REML else f"Linear mixed model fit by maximum likelihood . t-tests use {how} method " \
                "['lmerModLmerTest']"
        lines += self._scaled_residual_lines() + [""]
        lines += ["Random effects:"] + self._varcorr_lines()
        lines += [self._groups_line(), ""]
        if ddf is None:
            lines += self._fixef_lines()
        else:
            from .lmertest import coef_lines

            lines += coef_lines(self, ddf)
        corr = self._corr_lines()
        if corr:
            lines += [""] + corr
        if self.is_singular:
            lines += ["optimizer (L-BFGS-B) convergence code: 0 (OK)", "boundary (singular) fit: see help('isSingular')"]
        elif not self.opt.converged:
            lines += [self.opt.message]
        return LmerSummary("\n".join(lines))

    def __repr__(self) -> str:
        lines = self._header() + self._fit_criteria() + ["Random effects:"] + self._varcorr_lines(sd_only=True)
        lines += [self._groups_line(), "Fixed Effects:"]
        fe = self.fixef
        vals = r_format(fe.to_numpy(), 5)
        lines.append(format_table([vals], header=list(fe.index)))
        if self.is_singular:
            lines.append("boundary (singular) fit: see help('isSingular')")
        return "\n".join(lines)


def _pad(cells: list[str]) -> list[str]:
    width = max(len(c) for c in cells)
    return [c.rjust(width) for c in cells]


class LmerSummary(str):
    """The text of ``summary()``; prints as lme4 does, and displays in Jupyter as plain text."""

    def __repr__(self) -> str:
        return str(self)
