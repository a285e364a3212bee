"""The fitted generalized linear mixed model: lme4's accessors and ``summary()`` for ``glmer``."""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from .family import Family
from .formula import new_factor_codes, new_fixed_matrix, new_random_matrix
from .results import LmerSummary, MixedModelResult, _is_na_re_form, _pad
from .rprint import abbreviate, format_table, r_format

__all__ = ["GlmerResult", "format_pvalues", "signif_stars"]


def signif_stars(p: float) -> str:
    """R's significance stars (``symnum`` with cut points 0.001, 0.01, 0.05, 0.1)."""
    if not np.isfinite(p):
        return ""
    for cut, sym in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return sym
    return " "


def _format_sci(values: list[float], digits: int) -> list[str]:
    sig = 1
    for v in values:
        mant = f"{abs(v):.{digits - 1}e}".split("e")[0].replace(".", "").rstrip("0")
        sig = max(sig, len(mant))
    out = []
    for v in values:
        m, e = f"{v:.{sig - 1}e}".split("e")
        out.append(f"{m}e{int(e):+03d}")
    return out


def format_pvalues(pv: np.ndarray, digits: int = 3) -> list[str]:
    """R's ``format.pval(pv, digits)`` as used by ``printCoefmat`` (digits 3 for lme4's summary)."""
    eps = np.finfo(float).eps
    pv = np.asarray(pv, dtype=float)
    out = [""] * len(pv)
    is0 = pv < eps
    idx = np.flatnonzero(~is0)
    if idx.size:
        v = pv[idx]
        expo = np.floor(np.log10(np.where(v > 0, v, 1e-50)))
        fixp = (expo >= -3) | ((expo == -4) & (digits > 1))
        if fixp.any():
            for i, s in zip(idx[fixp], r_format(v[fixp].tolist(), digits), strict=True):
                out[i] = s
        if (~fixp).any():
            for i, s in zip(idx[~fixp], _format_sci(v[~fixp].tolist(), digits), strict=True):
                out[i] = s
    if is0.any():
        d = max(1, digits - 2)
        if idx.size:
            nc = max(len(out[i]) for i in idx)
            if d > 1 and d + 6 > nc:
                d = max(1, nc - 7)
            sep = "" if d == 1 and nc <= 6 else " "
        else:
            sep = "" if d == 1 else " "
        eps_s = _format_sci([eps], d)[0]
        for i in np.flatnonzero(is0):
            out[i] = f"<{sep}{eps_s}"
    return out


def _zapsmall(x: np.ndarray, digits: int) -> np.ndarray:
    """R's ``zapsmall(x, digits)``: round to ``digits − log10(max |x|)`` decimals (R rounds that half up)."""
    mx = float(np.max(np.abs(x)))
    if not mx > 0:
        return x
    return np.round(x, max(0, int(math.floor(digits - math.log10(mx) + 0.5))))


def _deparse_lines(label: str, formula: str, cutoff: int = 60) -> list[str]:
    """The formula as R's ``deparse()`` breaks it (width.cutoff 60): after a ``+`` once a line is full."""
    from .formula import _split_top_level

    lhs, _, rhs = formula.partition("~")
    terms = [t.strip() for t in _split_top_level(rhs, "+")] if rhs else []
    if not terms or not all(terms):
        return [f"{label} {formula}"]
    lines, line = [], f"{lhs.strip()} ~ {terms[0]}"
    for t in terms[1:]:
        if len(line) + 3 > cutoff:
            lines.append(line + " +")
            line = "    " + t
        else:
            line += " + " + t
    lines.append(line)
    return [f"{label} {lines[0]}"] + lines[1:]


@dataclass(eq=False)
class GlmerResult(MixedModelResult):
    """A generalized linear mixed model fitted by :func:`mlmhelpers.glmer`.

    Names follow lme4 (``fixef``, ``ranef``, ``coef``, ``vcov``,
    ``VarCorr`` → ``varcorr``, ``logLik`` → ``loglik``, ``AIC``/``BIC`` →
    ``aic``/``bic``, ``isSingular`` → ``is_singular``) and arm
    (``se_fixef``, ``se_ranef``). Tables are pandas objects with R-style
    names.

    Notes
    -----
    ``deviance`` is what lme4's ``deviance(m)`` returns for a glmer fit: the
    sum of the squared deviance residuals at the conditional modes. The
    "deviance" column of ``summary()`` (and of ``anova``) is −2 × ``loglik``,
    as in lme4.

    Examples
    --------
    >>> import mlmhelpers as mh
    >>> d = mh.load_arrests().assign(arrests=lambda d: (d.violent_arrest_per1000 * d.pop_tot / 1000).round())
    >>> m = mh.glmer("arrests ~ pop_pct_pov + offset(log(pop_tot)) + (1 | stusps)", d, family="poisson")
    >>> print(str(m.summary()).splitlines()[2])
     Family: poisson  ( log )
    >>> round(float(mh.tidy(m, exponentiate=True).estimate[1]), 4)  # rate ratio per % in poverty
    1.0731
    """

    formula: str
    family: Family
    nAGQ: int
    mf: object  # glmer.GlmerFrame
    design: object  # formula.DesignMatrices (new-data matrices)
    terms: list
    pred: object
    X: np.ndarray
    resp: object  # glm_response.GLMResponse
    fit: object  # glm_response.PIRLSResult at the optimum
    opt: object  # glmer.GlmerOptim
    data_name: str = "data"
    _vcov_cache: np.ndarray | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ basics
    @property
    def nobs(self) -> int:
        """Number of observations (R: ``nobs(m)``)."""
        return int(self.X.shape[0])

    @property
    def sigma(self) -> float:
        """1: binomial and Poisson models have no scale parameter (R: ``sigma(m)``)."""
        return 1.0

    # ---------------------------------------------------------- fixed effects
    def _vcov_rx(self) -> np.ndarray:
        """``(RX RXᵀ)⁻¹`` at the modes' weights: conditional on θ̂ (lme4: ``use.hessian = FALSE``)."""
        RX = self.fit.fac.RX
        p = RX.shape[0]
        Rinv = np.linalg.solve(RX, np.eye(p))
        return Rinv.T @ Rinv

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of β̂ (R: ``vcov(m)``).

        As lme4's default for glmer (``use.hessian = TRUE``): the β block of
        ``2 H⁻¹``, with ``H`` the Hessian of the deviance over (θ, β) at the
        optimum (central differences), so the uncertainty of θ̂ is taken into
        account. Where that Hessian is not positive definite (e.g. with
        ``nAGQ = 0``), ``(RX RXᵀ)⁻¹`` at the conditional modes, lme4's
        ``use.hessian = FALSE``.
        """
        if self._vcov_cache is None:
            V = None
            H = self.opt.hessian
            if H is not None and np.all(np.isfinite(H)):
                try:
                    np.linalg.cholesky(H)
                    Hinv = np.linalg.inv(H)
                    k = len(self.fit.theta)
                    V = 2.0 * Hinv[k:, k:]
                    V = 0.5 * (V + V.T)
                except np.linalg.LinAlgError:
                    V = None
            self._vcov_cache = V if V is not None else self._vcov_rx()
        return pd.DataFrame(self._vcov_cache, index=self.x_names, columns=self.x_names)

    @property
    def zvalues(self) -> pd.Series:
        """Wald z statistics β̂ / SE."""
        return (self.fixef / self.se_fixef).rename("z_value")

    @property
    def pvalues(self) -> pd.Series:
        """Two-sided Wald p-values, ``Pr(>|z|)`` of ``summary()``."""
        return pd.Series(2 * stats.norm.sf(np.abs(self.zvalues.to_numpy())), index=self.x_names, name="p_value")

    # ------------------------------------------------------------------ hooks
    def _theta_hat(self) -> np.ndarray:
        return self.fit.theta

    def _beta_hat(self) -> np.ndarray:
        return self.fit.beta

    def _lambdas(self) -> list[np.ndarray]:
        return self.pred.Lambdas(self.fit.theta)

    def _b_blocks(self) -> list[np.ndarray]:
        return self.pred.split_u(self.b)

    def _unscaled_condvar_blocks(self) -> list[np.ndarray]:
        """``Λ (Λᵀ Zᵀ W Z Λ + I)⁻¹ Λᵀ`` blocks at the IRLS weights of the modes."""
        return self.fit.fac.condvar_blocks()

    def _residual_sd(self) -> None:
        return None  # binomial and Poisson models have no residual variance

    @property
    def b(self) -> np.ndarray:
        """The conditional modes ``b = Λ u`` as one vector (the engine's layout)."""
        lams = self.pred.Lambdas(self.fit.theta)
        parts = [(uk @ lam.T).reshape(-1) for uk, lam in zip(self.pred.split_u(self.fit.u), lams, strict=True)]
        return np.concatenate(parts)

    # ------------------------------------------------------- likelihood
    @property
    def npar(self) -> int:
        """Parameters counted by R's ``logLik`` df: β and θ (no scale parameter)."""
        return len(self.fit.beta) + len(self.fit.theta)

    @property
    def loglik(self) -> float:
        """Log-likelihood: Laplace (nAGQ = 1) or adaptive Gauss–Hermite (nAGQ > 1) (R: ``logLik(m)``).

        For nAGQ > 1 lme4 1.1 leaves out the constant ``Σ log p(yᵢ | μᵢ = yᵢ)``
        (its long-standing issue #161); the value here includes it, so it is
        comparable with Laplace fits and with other software.
        """
        return -0.5 * self.opt.fun

    @property
    def deviance(self) -> float:
        """lme4's ``deviance(m)`` for a glmer fit: Σ squared deviance residuals at the modes.

        (The "deviance" of ``summary()`` and ``anova`` is ``-2 * m.loglik``.)
        """
        return float(np.sum(self.fit.state.devres))

    @property
    def df_resid(self) -> int:
        return self.nobs - self.npar

    # ------------------------------------------- hooks for simulate / bootstrap
    def _zlambda(self, theta, u) -> np.ndarray:
        """``Z Λ_θ u`` (as the engine's ``LinearPredictor.zlambda``): for simulating new random effects."""
        return self.pred.zlambda(np.asarray(theta, dtype=float), np.asarray(u, dtype=float))

    def _refit(self, y=None, *, theta0=None) -> GlmerResult:
        """The same model (design, family, prior weights, offset, nAGQ) refitted to a new response.

        ``y`` is on the scale of the fit's response: proportions of the trials
        (the prior weights) for a binomial fit, counts for a Poisson fit. No
        warnings are emitted; the result says ``converged`` / ``is_singular``.
        Used by simulation-based inference (parametric bootstrap).
        """
        from .glm_response import GLMResponse
        from .glmer import GlmerModel, _optimize

        y = self.resp.y if y is None else np.asarray(y, dtype=float)
        if y.shape != self.resp.y.shape or not np.all(np.isfinite(y)):
            raise ValueError(f"y must be {self.resp.y.shape[0]} finite values, got shape {y.shape}.")
        if self.family.family == "binomial":
            if np.any((y < 0) | (y > 1)) or np.any(np.abs(y * self.resp.pw - np.round(y * self.resp.pw)) > 1e-6):
                raise ValueError("a binomial response must be proportions of the trials (successes / trials).")
        elif np.any(y < 0):
            raise ValueError("a Poisson response must be non-negative counts.")
        resp = GLMResponse(y, self.family, weights=self.resp.pw, offset=self.resp.offset)
        t = self.terms[0]
        model = GlmerModel(self.pred, self.X, resp, self.nAGQ, t.codes if self.nAGQ > 1 else None,
                           t.nlevels if self.nAGQ > 1 else None)
        start = self.fit.theta if theta0 is None else np.asarray(theta0, dtype=float)
        with np.errstate(all="ignore"):
            opt = _optimize(model, self.fit.beta.copy(), start)
            fit = model.fit_at(opt.theta, opt.beta)
        return GlmerResult(formula=self.formula, family=self.family, nAGQ=self.nAGQ, mf=self.mf,
                           design=self.design, terms=self.terms, pred=self.pred, X=self.X, resp=resp, fit=fit,
                           opt=opt, data_name=self.data_name)

    # ------------------------------------------------ fitted and residuals
    @property
    def fitted(self) -> pd.Series:
        """Fitted means μ̂ including the random effects (R: ``fitted(m)``)."""
        return pd.Series(self.fit.state.mu, index=self.design.row_index, name="fitted")

    def residuals(self, type: str = "deviance") -> pd.Series:
        """Residuals (R: ``residuals(m, type)``): deviance (default), pearson, response or working."""
        st, r = self.fit.state, self.resp
        if type == "deviance":
            out = np.sign(r.y - st.mu) * np.sqrt(np.maximum(st.devres, 0.0))
        elif type == "pearson":
            out = (r.y - st.mu) * np.sqrt(r.pw) / np.sqrt(self.family.variance(st.mu))
        elif type == "response":
            out = r.y - st.mu
        elif type == "working":
            out = st.wres
        else:
            raise ValueError(f"type must be 'deviance', 'pearson', 'response' or 'working', got {type!r}.")
        return pd.Series(out, index=self.design.row_index, name=f"{type}_resid")

    def predict(self, newdata: pd.DataFrame | None = None, type: str = "link", re_form=None,
                allow_new_levels: bool = False, offset=None) -> pd.Series:
        """Predictions, as lme4's ``predict(m, newdata, type, re.form, allow.new.levels)``.

        Parameters
        ----------
        newdata : DataFrame, optional
            The fitted data if omitted.
        type : {"link", "response"}
            The linear predictor η (default, as lme4) or the mean μ = g⁻¹(η).
        re_form : None or "~0"
            ``None`` includes the random effects; ``"~0"`` (R's ``re.form = NA``)
            gives population-level predictions.
        allow_new_levels : bool, default False
            Levels absent from the fit get random effects of zero.
        offset : array-like, optional
            For ``newdata`` when the model was fitted with ``offset=``
            (offsets written in the formula, ``offset(log(n))``, are
            computed from ``newdata``).
        """
        from .glmer import _evaluate

        if type not in ("link", "response"):
            raise ValueError(f"type must be 'link' or 'response', got {type!r}.")
        exclude = _is_na_re_form(re_form)
        if newdata is None:
            eta = self.resp.offset + self.X @ self.fit.beta
            if not exclude:
                eta = eta + self.pred.zlambda(self.fit.theta, self.fit.u)
            index = self.design.row_index
        else:
            if not isinstance(newdata, pd.DataFrame):
                raise TypeError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}.")
            X = new_fixed_matrix(self.design, newdata)
            eta = X @ self.fit.beta
            for e in self.mf.offset_terms:
                eta = eta + _evaluate(e, newdata, "offset")
            if self.mf.offset_given:
                if offset is None:
                    raise ValueError("The model was fitted with offset=; pass offset= for newdata too "
                                     "(or write the offset in the formula: offset(log(exposure))).")
                off = np.asarray(offset, dtype=float)
                if off.shape != (len(newdata),):
                    raise ValueError(f"offset must have one value per row of newdata ({len(newdata)}).")
                eta = eta + off
            if not exclude:
                eta = eta + self._new_random_part(newdata, allow_new_levels)
            index = newdata.index
        out = eta if type == "link" else self.family.linkinv(eta)
        return pd.Series(out, index=index, name="prediction")

    def _new_random_part(self, newdata: pd.DataFrame, allow_new_levels: bool) -> np.ndarray:
        eta = np.zeros(len(newdata))
        b_blocks = self.pred.split_u(self.b)
        for t, b in zip(self.terms, b_blocks, strict=True):
            codes = new_factor_codes(t, newdata)
            if (codes < 0).any() and not allow_new_levels:
                lab = newdata[list(t.columns)].astype(str).agg(":".join, axis=1)[codes < 0]
                raise ValueError(f"New level(s) {', '.join(sorted(set(lab)))} of {t.name!r} not in the fitted "
                                 "data; pass allow_new_levels=True to predict them with random effects of zero.")
            Z = new_random_matrix(t, newdata)
            known = codes >= 0
            eta[known] += np.einsum("nk,nk->n", Z[known], b[codes[known]])
        return eta

    # ----------------------------------------------------------- printing
    def _method_title(self) -> str:
        if self.nAGQ != 1:  # lme4 prints nAGQ = 0 fits under the same title
            return ("Generalized linear mixed model fit by maximum likelihood (Adaptive Gauss-Hermite "
                    f"Quadrature, nAGQ = {self.nAGQ})")
        return "Generalized linear mixed model fit by maximum likelihood (Laplace Approximation)"

    def _header(self) -> list[str]:
        title = self._method_title()
        if len(title) + 9 + len("glmerMod") > 80:  # lme4's .prt.methTit wraps at the console width
            lines = textwrap.wrap(title, 78, break_on_hyphens=False)
            lines = [lines[0]] + ["  " + ln for ln in lines[1:]]
            lines[-1] += " [glmerMod]"
        else:
            lines = [f"{title} ['glmerMod']"]
        lines = lines + [f" Family: {self.family.family}  ( {self.family.link.name} )"]
        lines += _deparse_lines("Formula:", self.formula)
        lines.append(f"   Data: {self.data_name}")
        for label, arg in (("Weights:", self.mf.weights_name), (" Offset:", self.mf.offset_name)):
            if arg is not None:
                lines.append(f"{label} {arg}")
        return lines

    def _fit_criteria(self, decimals: int = 1) -> list[str]:
        # lme4's .prt.aictab: round, format() jointly (7 significant digits), df.resid on its own,
        # printed as a character vector with one common width.
        vals = np.round([self.aic, self.bic, self.loglik, -2 * self.loglik], decimals)
        cells = r_format(vals.tolist(), 7) + [str(int(self.df_resid))]
        names = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
        w = max(len(c) for c in cells + names)
        return [" ".join(n.rjust(w) for n in names), " ".join(c.rjust(w) for c in cells)]

    def _fixef_lines(self) -> list[str]:
        fe, se = self.fixef.to_numpy(), self.se_fixef.to_numpy()
        z = fe / se
        pv = 2 * stats.norm.sf(np.abs(z))
        both = np.concatenate([fe, se])
        acs = np.abs(both[np.isfinite(both) & (both != 0)])
        digmin = 1 + (math.floor(math.log10(acs.min())) if acs.size else 0)
        dec = max(1, int(4 - digmin))
        cs = r_format(np.round(both, dec), 4)
        zs = r_format(np.round(z, 3), 4)
        ps = format_pvalues(pv, 3)
        stars = [signif_stars(p) for p in pv]
        p = len(fe)
        table = [[cs[i], cs[p + i], zs[i], ps[i], stars[i].ljust(3)] for i in range(p)]
        lines = ["Fixed effects:", format_table(table, header=["Estimate", "Std. Error", "z value", "Pr(>|z|)", ""],
                                                row_names=self.x_names,
                                                align=["l", "r", "r", "r", "r", "l"])]
        if any(s.strip() for s in stars):
            lines += ["---", "Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1"]
        return lines

    def _corr_lines(self) -> list[str]:
        p = len(self.fit.beta)
        if p < 2:
            return []
        if p > 12:
            return [f"Correlation matrix not shown by default, as p = {p} > 12."]
        v = self.vcov.to_numpy()
        sd = np.sqrt(np.diag(v))
        corr = v / np.outer(sd, sd)
        names = self.x_names
        # R: format(round(corr, 3), nsmall = 3) jointly (one width), printed left-aligned
        cells = {(i, j): f"{np.round(corr[i, j], 3):.3f}" for i in range(1, p) for j in range(i)}
        w = max(len(c) for c in cells.values())
        rows = [[cells[i, j].rjust(w) for j in range(i)] + [""] * (p - 1 - i) for i in range(1, p)]
        header = [abbreviate(n, 6) for n in names[:-1]]
        return ["Correlation of Fixed Effects:", format_table(rows, header=header, row_names=names[1:],
                                                               align=["l"] * p)]

    def _scaled_residual_lines(self) -> list[str]:
        # lme4's .prt.resids: zapsmall(quantile(r), 5), printed with 4 significant digits
        q = _zapsmall(np.quantile(self.residuals("pearson").to_numpy(), [0, 0.25, 0.5, 0.75, 1.0]), 5)
        return ["Scaled residuals: ", format_table([_pad(r_format(q, 4))],
                                                   header=["Min", "1Q", "Median", "3Q", "Max"])]

    def _warning_lines(self) -> list[str]:
        if self.is_singular:
            return ["optimizer (Newton) convergence code: 0 (OK)", "boundary (singular) fit: see help('isSingular')"]
        if not self.opt.converged:
            return [f"Model failed to converge: {self.opt.message}"]
        return []

    def summary(self) -> LmerSummary:
        """lme4's ``summary(m)`` printout for a glmer fit, as a string that prints as R does."""
        lines = self._header() + [""] + self._fit_criteria() + [""]
        lines += self._scaled_residual_lines() + [""]
        lines += ["Random effects:"] + self._varcorr_lines() + [self._groups_line(), ""]
        lines += self._fixef_lines()
        corr = self._corr_lines()
        if corr:
            lines += [""] + corr
        lines += self._warning_lines()
        return LmerSummary("\n".join(lines))

    def __repr__(self) -> str:
        lines = self._header() + self._fit_criteria(decimals=4) + ["Random effects:"]
        lines += self._varcorr_lines(sd_only=True) + [self._groups_line(), "Fixed Effects:"]
        fe = self.fixef
        lines.append(format_table([r_format(fe.to_numpy(), 5)], header=list(fe.index)))
        if self.is_singular:
            lines.append("boundary (singular) fit: see help('isSingular')")
        return "\n".join(lines)
