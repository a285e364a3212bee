"""t and F tests of fixed effects with Satterthwaite or Kenward–Roger df, as lmerTest.

``contest(m, L)`` tests ``Lβ = rhs`` for a user's contrast matrix; the
coefficient table of ``m.summary(ddf=...)`` and ``tidy(m, ddf=...)``, and the
type III table of ``anova(m)``, are built from the same two functions.

* **Satterthwaite** (lmerTest's default, :mod:`mlmhelpers.satterthwaite`):
  standard errors from ``vcov(m)``, only the df are approximated.
* **Kenward–Roger** (pbkrtest, :mod:`mlmhelpers.kenward_roger`): the
  covariance of β̂ is first *adjusted* for the uncertainty of the variance
  estimates (standard errors grow), then the df and, for F tests, a scaling of
  the statistic are chosen. REML fits only.

On balanced designs both give the exact df of the classical ANOVA; on the
arrest data the df of a county-level slope are near the number of counties
and those of a state-level quantity near the number of states.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .results import LmerResult

__all__ = ["contest", "coef_table", "anova_type3", "DDF_METHODS"]

DDF_METHODS = ("Satterthwaite", "Kenward-Roger")


def _check_ddf(ddf: str) -> str:
    aliases = {"satterthwaite": "Satterthwaite", "kenward-roger": "Kenward-Roger", "kr": "Kenward-Roger",
               "kenward_roger": "Kenward-Roger"}
    key = str(ddf).lower()
    if key not in aliases:
        raise ValueError(f"ddf must be 'Satterthwaite' or 'Kenward-Roger', got {ddf!r}.")
    return aliases[key]


def _need_fit(model, fname: str) -> LmerResult:
    if not isinstance(model, LmerResult):
        raise TypeError(f"{fname}() needs a model fitted by lmer(), got {type(model).__name__}.")
    return model


def _contrast_matrix(model: LmerResult, L) -> np.ndarray:
    names = list(model.fixef.index)
    p = len(names)
    if isinstance(L, pd.Series):
        L = L.to_frame().T
    if isinstance(L, pd.DataFrame):
        unknown = [c for c in L.columns if c not in names]
        if unknown:
            raise ValueError(f"L has columns {unknown} that are not fixed effects of the model ({names}).")
        L = L.reindex(columns=names, fill_value=0.0).to_numpy(dtype=float)
    try:
        L = np.asarray(L, dtype=float)
    except (TypeError, ValueError):
        raise TypeError("L must be numeric: a vector of length p, a k x p matrix or a DataFrame "
                        "with fixed-effect names as columns.") from None
    L = np.atleast_2d(L)
    if L.ndim != 2 or L.shape[1] != p:
        raise ValueError(f"L must have {p} columns (one per fixed effect: {names}), got shape {L.shape}.")
    if not np.all(np.isfinite(L)):
        raise ValueError("L contains NaN or infinite values.")
    if L.shape[0] == 0:
        raise ValueError("L has no rows.")
    return L


def _t_row(model: LmerResult, c: np.ndarray, ddf: str, rhs: float = 0.0) -> tuple[float, float, float]:
    """(estimate, se, df) of one contrast."""
    est = float(c @ model.fixef.to_numpy())
    if ddf == "Kenward-Roger":
        from .kenward_roger import kenward_roger_info, kr_ddf

        var = float(c @ kenward_roger_info(model).vcov_adj @ c)
        df = kr_ddf(model, c)
    else:
        from .satterthwaite import satterthwaite_df_1d

        var, df = satterthwaite_df_1d(model, c)
    return est, float(np.sqrt(var)), float(df)


def _t_table(model, L, ddf, rhs, confint=False, level=0.95, index=None) -> pd.DataFrame:
    rows = []
    for c in L:
        est, se, df = _t_row(model, c, ddf)
        t = (est - rhs) / se
        row = {"Estimate": est, "Std. Error": se, "df": df, "t value": t}
        if confint:
            crit = stats.t.ppf(0.5 + level / 2, df)
            row.update({"lower": est - crit * se, "upper": est + crit * se})
        row["Pr(>|t|)"] = 2 * stats.t.sf(abs(t), df)
        rows.append(row)
    return pd.DataFrame(rows, index=index)


def _f_row(model: LmerResult, L: np.ndarray, ddf: str, rhs: np.ndarray | None = None) -> dict:
    beta = model.fixef.to_numpy()
    if rhs is not None and np.any(rhs != 0):
        beta = beta - np.linalg.pinv(L) @ rhs  # lmerTest: β − L⁺ rhs
    s2 = model.sigma**2
    if ddf == "Kenward-Roger":
        from .kenward_roger import kr_ftest

        r = kr_ftest(model, L, beta=beta)
        ms, F = r["F_unscaled"] * s2, r["F"]
    else:
        from .satterthwaite import satterthwaite_f

        r = satterthwaite_f(model, L, beta=beta)
        ms, F = r["F"] * s2, r["F"]
    return {"Sum Sq": ms * r["ndf"], "Mean Sq": ms, "NumDF": int(r["ndf"]), "DenDF": float(r["ddf"]),
            "F value": F, "Pr(>F)": float(stats.f.sf(F, r["ndf"], r["ddf"]))}


def contest(model: LmerResult, L, rhs=0.0, ddf: str = "Satterthwaite", joint: bool = True,
            confint: bool = False, level: float = 0.95) -> pd.DataFrame:
    """Test linear contrasts ``Lβ = rhs`` of the fixed effects, as ``lmerTest::contest``.

    Parameters
    ----------
    model : LmerResult
        A fit by :func:`mlmhelpers.lmer` (REML for Kenward–Roger).
    L : array-like or DataFrame
        One contrast (length ``p``), a ``k × p`` matrix, or a DataFrame (or
        Series) whose columns are fixed-effect names (missing ones are 0).
    rhs : float or array-like, default 0
        Right-hand side of the hypothesis.
    ddf : {"Satterthwaite", "Kenward-Roger"}
        Method for the denominator degrees of freedom.
    joint : bool, default True
        One F test of all rows of ``L`` (lmerTest's ``contestMD``); ``False``
        gives a t test for each row (``contest1D``).
    confint : bool, default False
        With ``joint=False``: add ``lower``/``upper`` t intervals.
    level : float, default 0.95

    Returns
    -------
    DataFrame
        ``joint=True``: one row with ``Sum Sq, Mean Sq, NumDF, DenDF, F value,
        Pr(>F)``. ``joint=False``: ``Estimate, Std. Error, df, t value,
        [lower, upper,] Pr(>|t|)``, one row per contrast.

    Notes
    -----
    R equivalent: ``lmerTest::contest(m, L, rhs = 0, ddf = "Satterthwaite",
    joint = TRUE)``. The F statistic of several contrasts uses lmerTest's
    method: the contrasts are orthogonalised through the eigen-decomposition
    of ``L vcov Lᵀ`` and their Satterthwaite df combined. With Kenward–Roger
    the table is pbkrtest's ``KRmodcomp``: ``Mean Sq`` from the unscaled Wald
    statistic, ``F value`` scaled.

    Examples
    --------
    >>> import mlmhelpers as mh
    >>> m = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", mh.load_arrests())
    >>> mh.contest(m, [0, 1], joint=False).round(2)
       Estimate  Std. Error       df  t value  Pr(>|t|)
    0      0.13        0.01  4283.27    12.97       0.0
    """
    model = _need_fit(model, "contest")
    ddf = _check_ddf(ddf)
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}.")
    L = _contrast_matrix(model, L)
    if ddf == "Kenward-Roger" and not model.REML:
        raise ValueError("Kenward-Roger's method is only available for REML fits; refit with REML=True.")
    if joint:
        rhs_v = np.broadcast_to(np.asarray(rhs, dtype=float), (L.shape[0],)).copy()
        return pd.DataFrame([_f_row(model, L, ddf, rhs_v)])
    if np.ndim(rhs) != 0:
        raise ValueError("With joint=False, rhs must be a single number.")
    return _t_table(model, L, ddf, float(rhs), confint=confint, level=level)


def coef_table(model: LmerResult, ddf: str = "Satterthwaite") -> pd.DataFrame:
    """lmerTest's coefficient table: ``Estimate, Std. Error, df, t value, Pr(>|t|)`` per fixed effect."""
    model = _need_fit(model, "coef_table")
    ddf = _check_ddf(ddf)
    if ddf == "Kenward-Roger" and not model.REML:
        raise ValueError("Kenward-Roger's method is only available for REML fits; refit with REML=True.")
    p = len(model.fixef)
    return _t_table(model, np.eye(p), ddf, 0.0, index=model.fixef.index)


def _fixed_terms(model: LmerResult) -> list[tuple[str, slice, tuple]]:
    """(R label, columns, factor names) of each fixed-effect term, the intercept excluded."""
    spec = model.design.x_spec
    used_factor = "factor(" in model.formula
    out = []
    for term, sl in spec.term_slices.items():
        factors = tuple(str(f.expr) for f in term.factors)
        if factors == ("1",):
            continue
        labels = ["factor(" + f[2:] if used_factor and f.startswith("C(") else f for f in factors]
        out.append((":".join(labels), sl, factors))
    return out


def _zapsmall(x: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall(x, digits)``: round to ``digits`` significant digits of the largest entry."""
    mx = np.max(np.abs(x)) if x.size else 0.0
    return np.round(x, max(0, digits - int(np.ceil(np.log10(mx)))) if mx > 0 else digits)


def _model_frame(model: LmerResult) -> pd.DataFrame:
    data = getattr(model, "data", None)
    if data is None:
        data = getattr(model, "_data", None)
    if data is None:
        raise ValueError("This model does not keep its data, needed for type III contrasts.")
    return data.loc[model.design.row_index]


def _type3_contrasts(model: LmerResult, terms) -> dict[str, np.ndarray]:
    """lmerTest's ``extract_contrasts_type3`` for treatment-coded models with contained terms.

    Each term is coded with all its levels (R's ``model.matrix(~ 0 + term)``); the coefficients of
    that over-parameterised design are mapped onto β (``t(ginv(X) rdX)``), and the columns of each
    term are made orthogonal to those of the terms containing it, highest order first.
    """
    from formulaic import model_matrix

    X = model.design.X
    frame = _model_frame(model)
    blocks = [np.ones((X.shape[0], 1))]
    for _, _, factors in terms:
        mm = model_matrix("0 + " + ":".join(factors), frame, na_action="ignore")
        blocks.append(np.asarray(mm, dtype=float))
    rdX = np.hstack(blocks)
    L = _zapsmall((np.linalg.pinv(X) @ rdX).T)  # (columns of rdX) x p

    def is_numeric(expr: str) -> bool:
        if expr.startswith("C("):
            return False
        return expr not in frame.columns or pd.api.types.is_numeric_dtype(frame[expr]) and \
            not pd.api.types.is_bool_dtype(frame[expr])

    info = {label: (sl, set(f), {v for v in f if is_numeric(v)}) for label, sl, f in terms}

    def contained(a: str, b: str) -> bool:
        va, na = info[a][1], info[a][2]
        vb, nb = info[b][1], info[b][2]
        return va < vb and na == nb

    order = sorted(range(len(terms)), key=lambda i: -len(terms[i][2]))  # stable, as R's order()
    for i in order:
        label, sl, _ = terms[i]
        contains = [t for t, _, _ in terms if t != label and contained(label, t)]
        if contains:
            cols = np.concatenate([np.arange(X.shape[1])[info[c][0]] for c in contains])
            A, B = L[:, cols], L[:, sl]
            coef, *_ = np.linalg.lstsq(A, B, rcond=None)
            L[:, sl] = _zapsmall(B - A @ coef)
    rows = []
    for j in range(X.shape[1]):  # the rows of rdX's parameters that are columns of X
        match = [k for k in range(rdX.shape[1]) if np.allclose(rdX[:, k], X[:, j], rtol=0, atol=1e-12)]
        if not match:
            raise NotImplementedError("Type III contrasts need treatment-coded factors (formulaic's default).")
        rows.append(match[0])
    Lsq = L[rows]
    out = {}
    for label, sl, _ in terms:
        Lt = Lsq[:, sl].T
        out[label] = Lt[np.sum(np.abs(Lt), axis=1) > 1e-8]
    return out


def anova_type3(model: LmerResult, ddf: str = "Satterthwaite") -> pd.DataFrame:
    """lmerTest's type III ``anova(m)``: one F test per fixed-effect term.

    A term that is not part of an interaction is tested by the contrasts
    that set all of its coefficients to zero. For a term contained in an
    interaction (``x`` and ``f`` in ``x * f``) the contrasts are lmerTest's
    type III ones (``extract_contrasts_type3``): made orthogonal to the
    higher-order terms containing it, so that the test does not depend on the
    coding of the other factors. Factors must have treatment coding
    (formulaic's and R's default).
    """
    model = _need_fit(model, "anova")
    ddf = _check_ddf(ddf)
    if ddf == "Kenward-Roger" and not model.REML:
        raise ValueError("Kenward-Roger's method is only available for REML fits; refit with REML=True.")
    terms = _fixed_terms(model)
    if not terms:
        raise ValueError("The model has no fixed-effect terms besides the intercept.")
    nested = any(set(f1) < set(f2) for _, _, f1 in terms for _, _, f2 in terms)
    p = len(model.fixef)
    contrasts = (_type3_contrasts(model, terms) if nested
                 else {label: np.eye(p)[sl] for label, sl, _ in terms})
    rows, index = [], []
    for label, _, _ in terms:
        rows.append(_f_row(model, contrasts[label], ddf))
        index.append(label)
    out = pd.DataFrame(rows, index=index)
    how = "Satterthwaite's" if ddf == "Satterthwaite" else "Kenward-Roger's"
    out.attrs["heading"] = f"Type III Analysis of Variance Table with {how} method"
    return out


# ----------------------------------------------------------------- printing (lmerTest's summary)
def _sig_needed(x: float, digits: int) -> int:
    if x == 0 or not np.isfinite(x):
        return 1
    mant = f"{abs(x):.{digits - 1}e}".split("e")[0]
    return max(1, len(mant.replace(".", "").rstrip("0")))


def _r_format_auto(values, digits: int) -> list[str]:
    """R's ``format(x, digits)`` with its choice between fixed and scientific notation (scipen = 0)."""
    from .rprint import r_decimals

    vals = [float(v) for v in values]
    fin = [v for v in vals if np.isfinite(v)]
    if not fin:
        return ["NA" for _ in vals]
    rgt = r_decimals(fin, digits)
    neg = any(v < 0 for v in fin)
    left = max(len(str(int(abs(round(v, rgt))))) for v in fin)
    fixed_w = neg + left + (rgt > 0) + rgt
    mF = max(_sig_needed(v, digits) for v in fin)
    big_exp = any(v != 0 and abs(np.floor(np.log10(abs(v)))) >= 100 for v in fin)
    sci_w = neg + mF + (mF > 1) + (5 if big_exp else 4)
    if fixed_w <= sci_w:
        return [f"{v:.{rgt}f}" if np.isfinite(v) else "NA" for v in vals]
    return [f"{v:.{mF - 1}e}" if np.isfinite(v) else "NA" for v in vals]


def format_pval(pv, digits: int = 3, eps: float = float(np.finfo(float).eps)) -> list[str]:
    """R's ``format.pval(pv, digits, eps)``."""
    pv = np.asarray(pv, dtype=float)
    out = [""] * len(pv)
    is0 = pv < eps
    rr = []
    if (~is0).any():
        idx = np.flatnonzero(~is0)
        p = pv[idx]
        expo = np.floor(np.log10(np.where(p > 0, p, 1e-50)))
        fixp = (expo >= -3) | ((expo == -4) & (digits > 1))
        for mask in (fixp, ~fixp):
            if mask.any():
                cells = _r_format_auto(p[mask], digits)
                for i, c in zip(idx[mask], cells, strict=True):
                    out[i] = c
        rr = [out[i] for i in idx]
    if is0.any():
        d = max(1, digits - 2)
        if rr:
            nc = max(len(c) for c in rr)
            if d > 1 and d + 6 > nc:
                d = max(1, nc - 7)
            sep = "" if d == 1 and nc <= 6 else " "
        else:
            sep = "" if d == 1 else " "
        txt = "<" + sep + _r_format_auto([eps], d)[0]
        for i in np.flatnonzero(is0):
            out[i] = txt
    return out


def _stars(p: float) -> str:
    return "***" if p <= 0.001 else "**" if p <= 0.01 else "*" if p <= 0.05 else "." if p <= 0.1 else " "


SIGNIF_LEGEND = "Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1"


def coef_lines(model: LmerResult, ddf: str, digits: int = 4) -> list[str]:
    """The ``Fixed effects:`` block of lmerTest's ``summary()`` (R's ``printCoefmat``)."""
    from .rprint import format_table

    ct = coef_table(model, ddf)
    cs = ct[["Estimate", "Std. Error", "df"]].to_numpy()
    acs = np.abs(cs[np.isfinite(cs) & (cs != 0)])
    digmin = 1 + (np.floor(np.log10(acs.min())) if acs.size else 0)
    dec = max(1, int(digits - digmin))
    cells = _r_format_auto(np.round(cs, dec).T.ravel(), digits)
    width = max(len(c) for c in cells)  # format() of a matrix: one width for all its cells
    cs_txt = np.array([c.rjust(width) for c in cells]).reshape(3, -1).T
    t_txt = _r_format_auto(np.round(ct["t value"].to_numpy(), max(1, min(5, digits - 1))), digits)
    pv = ct["Pr(>|t|)"].to_numpy()
    p_txt = format_pval(pv, digits=max(1, min(5, digits - 1)))
    stars = pv < 0.1
    rows = []
    for i in range(len(ct)):
        row = list(cs_txt[i]) + [t_txt[i], p_txt[i]]
        if stars.any():
            row.append(_stars(pv[i]).ljust(3))
        rows.append(row)
    header = ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"] + ([""] if stars.any() else [])
    lines = ["Fixed effects:", format_table(rows, header=header, row_names=list(ct.index))]
    if stars.any():
        lines += ["---", SIGNIF_LEGEND]
    return lines
