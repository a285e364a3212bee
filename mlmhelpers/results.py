"""The fitted linear mixed model: lme4's accessors on one result object."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .formula import DesignMatrices, ParsedFormula, new_fixed_matrix, new_random_matrix
from .engine import SINGULAR_TOL, OptimResult, PLSSolution, ThetaMap, conditional_variances, fixed_vcov
from .rprint import abbreviate, format_table, r_format

__all__ = ["LmerResult", "NotAvailableError"]


class NotAvailableError(ValueError, AttributeError):
    """A quantity that is not defined for this kind of fit (e.g. ``deviance`` of a REML fit).

    It is a ``ValueError`` and, so that ``hasattr()`` answers ``False``
    instead of raising, an ``AttributeError``.
    """


def _is_na_re_form(re_form) -> bool:
    if re_form is None:
        return False
    if isinstance(re_form, str):
        s = re_form.replace(" ", "")
        if s in ("~0", "NA", "~-1"):
            return True
        raise ValueError(
            f"re_form={re_form!r} is not supported: use None (include the random effects, "
            "R's re.form = NULL) or '~0' (exclude them, R's re.form = NA)."
        )
    if isinstance(re_form, float) and np.isnan(re_form):
        return True
    if re_form is pd.NA or re_form is False:
        return True
    raise ValueError(f"re_form={re_form!r} is not supported: use None or '~0'.")


@dataclass(eq=False)
class LmerResult:
    """A linear mixed model fitted by :func:`mlmhelpers.lmer`.

    The attribute and method names follow lme4 (``fixef``, ``ranef``,
    ``coef``, ``vcov``, ``sigma``, ``VarCorr`` → ``varcorr``, ``logLik`` →
    ``loglik``, ``AIC``/``BIC`` → ``aic``/``bic``) and arm (``se_fixef``,
    ``se_ranef``). Tables are pandas objects indexed by R-style names.
    """

    parsed: ParsedFormula
    design: DesignMatrices
    tmap: ThetaMap
    sol: PLSSolution
    opt: OptimResult
    REML: bool
    data_name: str = "data"

    # ------------------------------------------------------------------ basics
    @property
    def formula(self) -> str:
        return self.parsed.formula

    @property
    def nobs(self) -> int:
        """Number of observations used in the fit (R: ``nobs(m)``)."""
        return int(self.sol.n)

    @property
    def ngroups(self) -> pd.Series:
        """Number of levels of each grouping factor (R: ``ngrps(m)``)."""
        return pd.Series({self.design.group_name: len(self.design.levels)}, dtype=int)

    @property
    def group_sizes(self) -> pd.Series:
        """Observations per group, indexed by group level."""
        counts = np.bincount(self.design.groups, minlength=len(self.design.levels))
        return pd.Series(counts, index=self.design.levels, name="n")

    @property
    def sigma(self) -> float:
        """Residual standard deviation σ (R: ``sigma(m)``)."""
        return self.sol.sigma(self.REML)

    @property
    def theta(self) -> pd.Series:
        """Relative covariance parameters (R: ``getME(m, "theta")``)."""
        g = self.design.group_name
        names = []
        for r, c in zip(self.tmap.rows, self.tmap.cols):
            zr, zc = self.design.z_names[r], self.design.z_names[c]
            names.append(f"{g}.{zr}" if r == c else f"{g}.{zr}.{zc}")
        return pd.Series(self.sol.theta, index=names, name="theta")

    # ---------------------------------------------------------- fixed effects
    @property
    def fixef(self) -> pd.Series:
        """Fixed-effect estimates β̂ (R: ``fixef(m)``)."""
        return pd.Series(self.sol.beta, index=self.design.x_names, name="estimate")

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance of β̂, ``σ² (Xᵀ V⁻¹ X)⁻¹`` (R: ``vcov(m)``)."""
        v = fixed_vcov(self.sol, self.sigma)
        return pd.DataFrame(v, index=self.design.x_names, columns=self.design.x_names)

    @property
    def se_fixef(self) -> pd.Series:
        """Standard errors of β̂ (R: ``arm::se.fixef(m)``)."""
        return pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=self.design.x_names, name="std_error")

    # --------------------------------------------------------- random effects
    @property
    def ranef(self) -> pd.DataFrame:
        """Conditional modes of the random effects, groups × terms (R: ``ranef(m)$g``)."""
        return pd.DataFrame(self.sol.b, index=self.design.levels, columns=self.design.z_names)

    @property
    def condvar(self) -> np.ndarray:
        """Conditional covariance matrices of the random effects, shape (groups, q, q)."""
        return conditional_variances(self.sol, self.sigma)

    @property
    def se_ranef(self) -> pd.DataFrame:
        """Conditional standard deviations of the random effects (R: ``arm::se.ranef(m)$g``)."""
        sd = np.sqrt(np.diagonal(self.condvar, axis1=1, axis2=2))
        return pd.DataFrame(sd, index=self.design.levels, columns=self.design.z_names)

    @property
    def coef(self) -> pd.DataFrame:
        """Fixed plus random effects for every group (R: ``coef(m)$g``).

        Columns are all fixed effects, in the order of ``fixef``; a random
        term without a matching fixed effect (e.g. ``(0 + x | g)`` with no
        ``x`` in the fixed part) is appended, as lme4 does.
        """
        fe = self.fixef
        re = self.ranef
        out = pd.DataFrame(np.tile(fe.to_numpy(), (len(re), 1)), index=re.index, columns=fe.index)
        for name in re.columns:
            if name in out.columns:
                out[name] = out[name] + re[name]
            else:
                out[name] = re[name]
        return out

    # ------------------------------------------------- variance components
    def _covariance_blocks(self) -> list[tuple[list[str], np.ndarray]]:
        lam = self.sol.Lambda
        s2 = self.sigma**2
        blocks = []
        for start, stop, _ in self.tmap.blocks:
            sub = lam[start:stop, start:stop]
            blocks.append((self.design.z_names[start:stop], s2 * sub @ sub.T))
        return blocks

    @property
    def varcorr(self) -> pd.DataFrame:
        """Variance components (R: ``as.data.frame(VarCorr(m))``).

        One row per variance (``var2`` missing) and per correlation, then the
        residual. As in lme4, a second covariance block of the same grouping
        factor (``(x || g)`` gives one block per term) is labelled ``g.1``. ``vcov`` holds variances and covariances; ``sdcor`` holds
        standard deviations and correlations.
        """
        g = self.design.group_name
        rows = []
        for bi, (names, cov) in enumerate(self._covariance_blocks()):
            label = g if bi == 0 else f"{g}.{bi}"  # lme4 names further blocks of g g.1, g.2 (e.g. ||)
            sd = np.sqrt(np.diag(cov))
            for i, n in enumerate(names):
                rows.append((label, n, None, cov[i, i], sd[i]))
            for j in range(len(names)):
                for i in range(j + 1, len(names)):
                    corr = cov[i, j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else np.nan
                    rows.append((label, names[j], names[i], cov[i, j], corr))
        rows.append(("Residual", None, None, self.sigma**2, self.sigma))
        out = pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])
        text = pd.StringDtype(na_value=np.nan)  # missing names print as NaN, like R's NA
        return out.astype({"grp": text, "var1": text, "var2": text})

    @property
    def is_singular(self) -> bool:
        """Whether the fit is on the boundary (R: ``isSingular(m)``, tol = 1e-4)."""
        th = self.sol.theta[self.tmap.is_diag]
        return bool(np.any(th < SINGULAR_TOL))

    # ------------------------------------------------------- likelihood
    @property
    def npar(self) -> int:
        """Parameters counted by R's ``logLik`` df: β, θ and σ."""
        return len(self.sol.beta) + self.tmap.size + 1

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
        ``deviance`` (ML fits).
        """
        from .engine import criterion

        theta = np.atleast_1d(np.asarray(theta, dtype=float))
        if theta.shape != (self.tmap.size,):
            raise ValueError(f"theta must have {self.tmap.size} value(s), got {theta.size}.")
        return float(criterion(theta, self._stats, self.tmap, self.REML))

    @property
    def reml_criterion(self) -> float:
        """The REML criterion at convergence (−2 × REML log-likelihood)."""
        if not self.REML:
            from .engine import pls

            return pls(self.sol.theta, self._stats, self.tmap).deviance(True)
        return self.opt.fun

    @property
    def loglik(self) -> float:
        """Log-likelihood (REML log-likelihood for a REML fit), as R's ``logLik(m)``."""
        return -0.5 * self.opt.fun

    @property
    def aic(self) -> float:
        """R's ``AIC(m)``: −2 logLik + 2 × npar."""
        return self.opt.fun + 2 * self.npar

    @property
    def bic(self) -> float:
        """R's ``BIC(m)``: −2 logLik + log(n) × npar."""
        return self.opt.fun + np.log(self.nobs) * self.npar

    @property
    def df_resid(self) -> int:
        return self.nobs - self.npar

    # ------------------------------------------------ fitted and residuals
    def _linear_predictor(self, X: np.ndarray, Z: np.ndarray | None, codes: np.ndarray | None) -> np.ndarray:
        eta = X @ self.sol.beta
        if Z is not None:
            b = self.sol.b
            known = codes >= 0
            contrib = np.einsum("nq,nq->n", Z[known], b[codes[known]])
            eta[known] += contrib
        return eta

    @property
    def fitted(self) -> pd.Series:
        """Fitted values including the random effects (R: ``fitted(m)``)."""
        d = self.design
        return pd.Series(self._linear_predictor(d.X, d.Z, d.groups), index=d.row_index, name="fitted")

    def residuals(self, scaled: bool = False) -> pd.Series:
        """Response residuals ``y − fitted`` (R: ``residuals(m)``).

        ``scaled=True`` divides by σ (R: ``residuals(m, scaled = TRUE)``),
        the residuals ``summary()`` describes.
        """
        r = self.design.y - self.fitted.to_numpy()
        if scaled:
            r = r / self.sigma
        return pd.Series(r, index=self.design.row_index, name="scaled_resid" if scaled else "resid")

    def predict(self, newdata: pd.DataFrame | None = None, re_form=None, allow_new_levels: bool = False) -> pd.Series:
        """Predictions, as R's ``predict(m, newdata, re.form, allow.new.levels)``.

        Parameters
        ----------
        newdata : DataFrame, optional
            Data to predict for; the fitted data if omitted.
        re_form : None or "~0"
            ``None`` (R's ``re.form = NULL``) adds each group's random
            effects; ``"~0"`` (R's ``re.form = NA`` or ``~0``) gives the
            population-level prediction ``Xβ̂``.
        allow_new_levels : bool
            Whether a group absent from the fit is allowed; it gets random
            effects of zero, i.e. the population-level prediction.
        """
        exclude = _is_na_re_form(re_form)
        d = self.design
        if newdata is None:
            return pd.Series(self._linear_predictor(d.X, None if exclude else d.Z, d.groups),
                             index=d.row_index, name="prediction")
        if not isinstance(newdata, pd.DataFrame):
            raise TypeError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}.")
        X = new_fixed_matrix(d, newdata)
        if exclude:
            return pd.Series(X @ self.sol.beta, index=newdata.index, name="prediction")
        g = d.group_name
        if g not in newdata.columns:
            raise ValueError(
                f"newdata has no column {g!r}, needed for the random effects; pass "
                "re_form='~0' for population-level predictions."
            )
        if newdata[g].isna().any():
            raise ValueError(f"newdata's grouping column {g!r} has missing values.")
        codes = d.levels.get_indexer(newdata[g])
        new = sorted(set(newdata[g][codes < 0].astype(str)))
        if new and not allow_new_levels:
            raise ValueError(
                f"New level(s) {', '.join(new)} of {g!r} not in the fitted data; pass "
                "allow_new_levels=True to predict them with random effects of zero."
            )
        Z = new_random_matrix(d, newdata)
        return pd.Series(self._linear_predictor(X, Z, codes), index=newdata.index, name="prediction")

    # ------------------------------------- internal contract (CONTRACT.md, section 2)
    # Today's one-factor implementation; the engine rewrite (branch `engine`) replaces it.
    @property
    def n_theta(self) -> int:
        """Number of covariance parameters θ."""
        return self.tmap.size

    @property
    def converged(self) -> bool:
        """Whether the optimum passed lme4's gradient check."""
        return bool(self.opt.converged)

    def _pls_at(self, theta) -> PLSSolution:
        """The penalised least-squares solution at another θ (same data)."""
        from .engine import pls

        return pls(np.asarray(theta, dtype=float), self._stats, self.tmap)

    def _zlambda(self, theta, u) -> np.ndarray:
        """``Z Λ_θ u`` for ``u`` of shape (q,) or (q, k), q = groups × terms, group-major."""
        d = self.design
        J, qq = len(d.levels), d.Z.shape[1]
        u = np.asarray(u, dtype=float)
        k = None if u.ndim == 1 else u.shape[1]
        U = u.reshape(J, qq, -1)  # (J, qq, k)
        B = np.einsum("rc,jck->jrk", self.tmap.Lambda(np.asarray(theta, dtype=float)), U)
        out = np.einsum("nr,nrk->nk", d.Z, B[d.groups])
        return out[:, 0] if k is None else out

    def _refit(self, y=None, X=None, *, REML=None, theta0=None) -> "LmerResult":
        """Refit to a new response and/or fixed-effects matrix with the same random-effects design.

        Cross-products that do not involve ``y`` are reused when ``X`` is
        unchanged. No warnings; the result's ``converged`` and
        ``is_singular`` say how the fit went.
        """
        from dataclasses import replace

        from .engine import SufficientStats, optimize_theta, pls, sufficient_stats

        d = self.design
        reml = self.REML if REML is None else bool(REML)
        y = d.y if y is None else np.asarray(y, dtype=float)
        if y.shape != d.y.shape:
            raise ValueError(f"y must have {d.y.shape[0]} values, got shape {y.shape}.")
        if X is None:
            X, names, old = d.X, d.x_names, self._stats
            J = old.ZtZ.shape[0]
            Zty = np.stack([np.bincount(d.groups, weights=d.Z[:, a] * y, minlength=J)
                            for a in range(d.Z.shape[1])], axis=1)
            stats = SufficientStats(ZtZ=old.ZtZ, ZtX=old.ZtX, Zty=Zty, XtX=old.XtX, Xty=X.T @ y,
                                    yty=float(y @ y), n=old.n)
        else:
            X = np.asarray(X, dtype=float)
            if X.ndim != 2 or X.shape[0] != d.y.shape[0]:
                raise ValueError(f"X must have {d.y.shape[0]} rows, got shape {X.shape}.")
            names = d.x_names if X.shape[1] == len(d.x_names) else [f"X{i + 1}" for i in range(X.shape[1])]
            stats = sufficient_stats(y, X, d.Z, d.groups, len(d.levels))
        start = self.sol.theta if theta0 is None else np.asarray(theta0, dtype=float)
        opt = optimize_theta(stats, self.tmap, reml=reml, theta0=start)
        sol = pls(opt.theta, stats, self.tmap)
        out = replace(self, design=replace(d, y=y, X=X, x_names=list(names)), sol=sol, opt=opt, REML=reml)
        out._stats_cache = stats
        return out

    # ----------------------------------------------------------- printing
    @property
    def _stats(self):
        from .engine import sufficient_stats

        if not hasattr(self, "_stats_cache"):
            d = self.design
            self._stats_cache = sufficient_stats(d.y, d.X, d.Z, d.groups, len(d.levels))
        return self._stats_cache

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
        cells = [f"{v:.1f}" if n != "df.resid" else str(int(v)) for n, v in zip(names, vals)]
        return [format_table([cells], header=names)]

    def _varcorr_lines(self, sd_only: bool = False) -> list[str]:
        g = self.design.group_name
        blocks = self._covariance_blocks()
        rows, variances, sds, corrs = [], [], [], []
        max_q = max(len(n) for n, _ in blocks)
        for bi, (names, cov) in enumerate(blocks):
            sd = np.sqrt(np.diag(cov))
            # lme4 labels each covariance block of one factor g, g.1, g.2, ... (e.g. for ||).
            label = g if bi == 0 else f"{g}.{bi}"
            for i, n in enumerate(names):
                rows.append([label if i == 0 else "", n])
                variances.append(cov[i, i])
                sds.append(sd[i])
                corrs.append([f"{cov[i, j] / (sd[i] * sd[j]):.2f}" if sd[i] > 0 and sd[j] > 0 else "NaN"
                              for j in range(i)])
        rows.append(["Residual", ""])
        variances.append(self.sigma**2)
        sds.append(self.sigma)
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
        for r, v, s, c in zip(rows, v_str, s_str, corrs):
            line = r + ([s] if sd_only else [v, s])
            if has_corr:
                line += c + [""] * (max_q - 1 - len(c))
            table.append(line)
        ncol = len(header)
        align = ["l"] * ncol
        text = format_table(table, header=header, align=align)
        return [" " + line for line in text.split("\n")]

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

    def summary(self, ddf: str | None = None) -> "LmerSummary":
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
        g = self.design.group_name
        lines += [f"Number of obs: {self.nobs}, groups:  {g}, {len(self.design.levels)}", ""]
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
        g = self.design.group_name
        lines += [f"Number of obs: {self.nobs}, groups:  {g}, {len(self.design.levels)}", "Fixed Effects:"]
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
