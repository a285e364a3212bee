"""Fit generalized linear mixed models (binomial, Poisson) with lme4's algorithm: ``glmer``."""

from __future__ import annotations

import ast
import dataclasses
import functools
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from formulaic import Formula, model_matrix
from formulaic.errors import FormulaicError
from scipy import optimize

from .family import Family, get_family
from .formula import ParsedFormula, _split_top_level, _strip_outer_parens, build_design, parse_formula
from .glm_response import (
    GLMResponse,
    PIRLSError,
    _scalar_term,
    agq_deviance,
    laplace_deviance,
    laplace_gradient,
    moment_theta,
    pirls,
    x_outer_rows,
)
from .messages import (
    ConvergenceWarning,
    NonIntegerResponseWarning,
    RowsDroppedWarning,
    SeparationWarning,
    SingularFitWarning,
    warn,
)
from .predictor import LinearPredictor

__all__ = ["glmer", "SeparationWarning"]

_RESPONSE_COL = "glmer_response__"


# --------------------------------------------------------------------------- #
# Model frame: response, prior weights, offset
# --------------------------------------------------------------------------- #


@dataclass
class GlmerFrame:
    """The rows used and the response-side vectors, aligned with the design."""

    parsed: ParsedFormula  # fixed part without offset() terms
    y: np.ndarray
    weights: np.ndarray
    offset: np.ndarray
    offset_terms: list[str]
    offset_given: bool  # offset= was passed as an argument
    weights_name: str | None  # weights= / offset= as column names, for summary()'s Weights:/Offset: lines
    offset_name: str | None
    response_kind: str  # "binary", "proportion", "cbind", "count"
    frame: pd.DataFrame  # the complete rows of the model's variables (a copy)
    n_dropped: int


_FUNCS = {"log": np.log, "exp": np.exp, "sqrt": np.sqrt, "abs": np.abs, "log1p": np.log1p, "log10": np.log10,
          "log2": np.log2, "expm1": np.expm1}
_BINOPS = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide, ast.Pow: np.power}


def _arith(expr: str):
    """The parsed expression if it is plain arithmetic on columns (R's ``^`` is a power), else None."""
    try:
        tree = ast.parse(expr.strip().replace("^", "**"), mode="eval")
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in _FUNCS and len(node.args) == 1
                    and not node.keywords):
                return None
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINOPS:
                return None
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd)):
                return None
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, (int, float)) or isinstance(node.value, bool):
                return None
        elif not isinstance(node, (ast.Expression, ast.Name, ast.Load, ast.operator, ast.unaryop)):
            return None
    return tree


def _arith_names(tree) -> set[str]:
    funcs = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in funcs}


def _arith_eval(node, frame: pd.DataFrame):
    if isinstance(node, ast.Expression):
        return _arith_eval(node.body, frame)
    if isinstance(node, ast.Name):
        col = frame[node.id]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            raise TypeError(f"column {node.id!r} is not numeric (dtype {col.dtype})")
        return col.to_numpy(dtype=float)
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.UnaryOp):
        v = _arith_eval(node.operand, frame)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
        return _BINOPS[type(node.op)](_arith_eval(node.left, frame), _arith_eval(node.right, frame))
    return _FUNCS[node.func.id](_arith_eval(node.args[0], frame))


def _required(expr: str) -> set[str]:
    return set(_required_cached(expr))


@functools.lru_cache(maxsize=512)
def _term_variables(expr: str) -> frozenset[str]:
    """The columns a formula term uses (a pure function of the string, memoised)."""
    try:
        return frozenset(Formula(re.sub(r"(?<![\w.])factor\(", "C(", expr)).required_variables)
    except FormulaicError as exc:
        raise ValueError(f"Malformed formula term {expr!r}: {exc}") from None


@functools.lru_cache(maxsize=512)
def _required_cached(expr: str) -> frozenset[str]:
    """The columns an R expression uses (a pure function of the string, memoised)."""
    tree = _arith(expr)
    if tree is not None:
        return frozenset(_arith_names(tree))
    try:
        return frozenset(Formula(f"I({expr})").required_variables)
    except FormulaicError as exc:
        raise ValueError(f"Malformed expression {expr!r} in the formula: {exc}") from None


def _evaluate(expr: str, frame: pd.DataFrame, what: str) -> np.ndarray:
    """A numeric vector from an R-style expression (a column or e.g. ``size - incidence``)."""
    expr = expr.strip()
    if expr in frame.columns:
        col = frame[expr]
        if pd.api.types.is_bool_dtype(col):
            return col.to_numpy(dtype=float)
        if not pd.api.types.is_numeric_dtype(col):
            raise TypeError(f"The {what} {expr!r} must be numeric, got dtype {col.dtype}.")
        return col.to_numpy(dtype=float)
    tree = _arith(expr)
    if tree is not None:  # plain arithmetic on columns: evaluated directly (formulaic is slow for this)
        try:
            with np.errstate(all="ignore"):
                out = np.broadcast_to(np.asarray(_arith_eval(tree, frame), dtype=float), (len(frame),)).copy()
            return out
        except (TypeError, KeyError) as exc:
            raise TypeError(f"The {what} {expr!r} must be numeric: {exc}.") from None
    try:
        mm = model_matrix(f"0 + I({expr})", frame, na_action="raise")
    except (FormulaicError, Exception) as exc:  # formulaic raises several types
        raise ValueError(f"Could not evaluate the {what} {expr!r}: {exc}") from None
    out = np.asarray(mm, dtype=float)
    if out.ndim != 2 or out.shape[1] != 1:
        raise TypeError(f"The {what} {expr!r} must give one numeric column.")
    return out.ravel()


_CBIND_RE = re.compile(r"^\s*cbind\s*\((?P<args>.*)\)\s*$", re.S)


def _split_offsets(fixed: str, formula: str) -> tuple[str, list[str]]:
    keep, offsets = [], []
    for raw in _split_top_level(fixed, "+"):
        term = raw.strip()
        m = re.fullmatch(r"offset\s*\((?P<e>.*)\)", term, re.S)
        if m and _strip_outer_parens(term[term.index("("):]) is not None:
            if not m.group("e").strip():
                raise ValueError(f"Malformed formula {formula!r}: empty offset().")
            offsets.append(m.group("e").strip())
        else:
            keep.append(term)
    return (" + ".join(keep) if keep else "1"), offsets


def _as_vector(value, data: pd.DataFrame, name: str) -> pd.Series:
    """``weights=``/``offset=`` given as a column name or a vector of len(data)."""
    if isinstance(value, str):
        if value not in data.columns:
            raise ValueError(f"{name}={value!r} is not a column of the data.")
        s = data[value]
    else:
        arr = np.asarray(value)
        if arr.ndim != 1 or len(arr) != len(data):
            raise ValueError(f"{name} must be a column name or a vector with one value per row of the "
                             f"data ({len(data)}), got shape {arr.shape}.")
        s = pd.Series(arr, index=data.index)
    if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        raise TypeError(f"{name} must be numeric, got dtype {s.dtype}.")
    return s.astype(float)


def _binary_from_labels(col: pd.Series, name: str) -> np.ndarray:
    """0/1 from a two-level factor: the first level is failure, as in R."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        levels = [lv for lv in col.cat.categories if (col == lv).any()]
    else:
        levels = sorted(col.unique().tolist(), key=str)
    if len(levels) != 2:
        raise ValueError(
            f"The binomial response {name!r} is a factor with {len(levels)} level(s) "
            f"({', '.join(map(str, levels[:5]))}); it needs exactly two (the first is failure, "
            "as in R)."
        )
    return (col != levels[0]).to_numpy(dtype=float)


def model_frame(formula: str, data: pd.DataFrame, family: Family, weights=None, offset=None) -> GlmerFrame:
    """Validate the data for :func:`glmer` and compute y, prior weights and offset."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}.")
    if len(data) == 0:
        raise ValueError("data is empty: the model needs at least one row.")
    parsed = parse_formula(formula)
    fixed, offset_terms = _split_offsets(parsed.fixed, formula)
    parsed = ParsedFormula(response=parsed.response, fixed=fixed, random=parsed.random, formula=formula)
    if not parsed.random:
        raise ValueError(f"The formula {formula!r} has no random-effect term such as '(1 | group)'; "
                         "glmer() fits mixed models (use statsmodels' GLM for a model without one).")
    m = _CBIND_RE.match(parsed.response)
    cbind_args = None
    if m:
        cbind_args = [a.strip() for a in _split_top_level(m.group("args"), ",")]
        if len(cbind_args) != 2 or not all(cbind_args):
            raise ValueError(f"Malformed response {parsed.response!r}: write cbind(successes, failures).")
        if family.family != "binomial":
            raise ValueError("cbind(successes, failures) is a binomial response; use family='binomial'.")
    resp_exprs = cbind_args or [parsed.response]
    needed: set[str] = set()
    for e in resp_exprs + offset_terms:
        needed |= _required(e)
    for e in [parsed.fixed] + [t.expr for t in parsed.random]:
        needed |= _term_variables(e)
    needed |= {c for t in parsed.random for _, cols in t.factors() for c in cols}  # a/b, a:b, `a b`
    missing = sorted(v for v in needed if v not in data.columns)
    if missing:
        raise ValueError(f"Column(s) {', '.join(map(repr, missing))} used in the formula are not in the data. "
                         f"Available columns: {', '.join(map(str, data.columns))}.")
    extra = pd.DataFrame(index=data.index)
    if weights is not None:
        extra["(weights)"] = _as_vector(weights, data, "weights")
    if offset is not None:
        extra["(offset)"] = _as_vector(offset, data, "offset")
    used = sorted(needed)
    frame = pd.concat([data.loc[:, used], extra], axis=1) if len(extra.columns) else data.loc[:, used]
    incomplete = frame.isna().any(axis=1).to_numpy()
    n_dropped = int(incomplete.sum())
    if n_dropped == len(frame):
        raise ValueError("Every row has a missing value in a model variable; nothing to fit.")
    if n_dropped:
        cols = [c for c in frame.columns if frame[c].isna().any()]
        warn(f"Dropped {n_dropped} of {len(frame)} rows with missing values (in {', '.join(cols)}), "
             "as R's na.omit does.", RowsDroppedWarning)
        frame = frame.loc[~incomplete]
    frame = frame.copy()
    n = len(frame)
    w_user = frame["(weights)"].to_numpy() if weights is not None else np.ones(n)
    if not np.all(np.isfinite(w_user)) or np.any(w_user < 0):
        raise ValueError("weights must be finite and non-negative.")

    # response -----------------------------------------------------------------
    if family.family == "binomial":
        if cbind_args:
            s = _evaluate(cbind_args[0], frame, "number of successes")
            f = _evaluate(cbind_args[1], frame, "number of failures")
            if not (np.all(np.isfinite(s)) and np.all(np.isfinite(f))):
                raise ValueError("cbind(successes, failures) has infinite values.")
            if np.any(s < 0) or np.any(f < 0):
                raise ValueError(f"cbind({cbind_args[0]}, {cbind_args[1]}): counts of successes and failures "
                                 f"must be non-negative ({int(np.sum(s < 0) + np.sum(f < 0))} negative).")
            if np.any(np.abs(s - np.round(s)) > 1e-8) or np.any(np.abs(f - np.round(f)) > 1e-8):
                raise ValueError(f"cbind({cbind_args[0]}, {cbind_args[1]}): counts of successes and failures "
                                 "must be whole numbers.")
            trials = s + f
            y = np.where(trials > 0, s / np.where(trials > 0, trials, 1.0), 0.0)
            pw = w_user * trials
            kind = "cbind"
        else:
            name = parsed.response
            col = frame[name] if name in frame.columns else None
            if col is not None and (pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col)):
                y = col.to_numpy(dtype=float) if pd.api.types.is_bool_dtype(col) else _binary_from_labels(col, name)
            else:
                y = _evaluate(name, frame, "response")
            if not np.all(np.isfinite(y)):
                raise ValueError(f"The response {name!r} has infinite values.")
            if np.any(y < 0) or np.any(y > 1):
                bad = int(np.sum((y < 0) | (y > 1)))
                raise ValueError(
                    f"The binomial response {name!r} has {bad} value(s) outside [0, 1]. Give 0/1 outcomes, "
                    "proportions with weights= (the numbers of trials), or cbind(successes, failures)."
                )
            pw = w_user
            succ = y * pw
            if np.any(np.abs(succ - np.round(succ)) > 1e-3):
                raise ValueError(
                    f"Non-integer number of successes: the binomial response {name!r} times the weights "
                    "(the numbers of trials) must be whole numbers. Proportions need weights= giving the "
                    "trials; R's glm/glmer only warn here and fit a quasi-likelihood."
                )
            kind = "binary" if np.all((y == 0) | (y == 1)) and np.all(pw == 1) else "proportion"
    else:  # poisson
        name = parsed.response
        if name in frame.columns and not pd.api.types.is_numeric_dtype(frame[name]):
            raise TypeError(f"The Poisson response {name!r} must be numeric counts, got dtype {frame[name].dtype}.")
        if name in frame.columns and pd.api.types.is_bool_dtype(frame[name]):
            raise TypeError(f"The Poisson response {name!r} is boolean; counts are needed (binomial for 0/1).")
        y = _evaluate(name, frame, "response")
        if not np.all(np.isfinite(y)):
            raise ValueError(f"The response {name!r} has infinite values.")
        if np.any(y < 0):
            raise ValueError(f"The Poisson response {name!r} has {int(np.sum(y < 0))} negative value(s); "
                             "counts must be non-negative.")
        nonint = np.abs(y - np.round(y)) > 1e-8
        if nonint.any():
            warn(
                f"The Poisson response {name!r} has {int(nonint.sum())} non-integer value(s) "
                "(lme4 warns 'non-integer x' too); the log-likelihood uses the continuous extension "
                "y log mu - mu - lgamma(y + 1).", NonIntegerResponseWarning)
        pw = w_user
        kind = "count"

    # offset ---------------------------------------------------------------------
    off = np.zeros(n)
    for e in offset_terms:
        off = off + _evaluate(e, frame, "offset")
    if offset is not None:
        off = off + frame["(offset)"].to_numpy()
    if not np.all(np.isfinite(off)):
        raise ValueError(f"The offset has {int(np.sum(~np.isfinite(off)))} infinite value(s) "
                         "(log of a zero exposure?).")
    return GlmerFrame(parsed=parsed, y=y, weights=pw, offset=off, offset_terms=offset_terms,
                      offset_given=offset is not None, weights_name=weights if isinstance(weights, str) else None,
                      offset_name=offset if isinstance(offset, str) else None, response_kind=kind, frame=frame,
                      n_dropped=n_dropped)


# --------------------------------------------------------------------------- #
# The model: predictor + response; the two optimisation stages
# --------------------------------------------------------------------------- #


class GlmerModel:
    """Predictor and GLM response of one model; deviance functions of lme4's two stages."""

    def __init__(self, pred, X: np.ndarray, resp: GLMResponse, nAGQ: int, codes: np.ndarray | None,
                 n_levels: int | None) -> None:
        self.pred, self.X, self.resp, self.nAGQ = pred, X, resp, nAGQ
        self.codes, self.n_levels = codes, n_levels
        self.p = X.shape[1]
        self.n_theta = pred.n_theta
        self.is_diag = np.asarray(pred.is_diag, dtype=bool)
        self._beta = np.zeros(self.p)
        self.beta_start = None  # the GLM's β: the cold start when a warm start fails (set by _optimize)
        self._u = np.zeros(pred.q)
        self._u_at = None  # (θ, √w) of the last stage-1 modes, for _rescaled_u
        self.last_fit = None  # the PIRLS result of the last evaluation
        self._x_outer = None
        self.nfev = 0

    @property
    def x_outer(self) -> np.ndarray | None:
        """X's rows' outer products for stage 1's joint PIRLS solves of a single scalar term (computed
        once; None otherwise or if too large: see :func:`x_outer_rows`)."""
        if self._x_outer is None and _scalar_term(self.pred) is not None:
            self._x_outer = x_outer_rows(self.X)
        return self._x_outer

    def pirls(self, theta: np.ndarray, beta: np.ndarray, u0: np.ndarray, *, u_only: bool, **kw):
        """PIRLS from the warm start ``(beta, u0)``; if that fails, again from the cold start (u = 0
        and, for the joint solve, the GLM's β): modes carried from a poor point (a θ near 0, say)
        can overflow η where the cold start converges. Raises PIRLSError or LinAlgError if both fail."""
        args = (self.pred, self.X, self.resp, np.asarray(theta, dtype=float))
        try:
            return pirls(*args, beta, u0, u_only=u_only, x_outer=self.x_outer, **kw)
        except (PIRLSError, np.linalg.LinAlgError):
            cold_beta = beta if u_only or self.beta_start is None else self.beta_start
            return pirls(*args, cold_beta, np.zeros(self.pred.q), u_only=u_only, x_outer=self.x_outer, **kw)

    # -- stage 1: θ only; β and u by PIRLS (lme4's nAGQ = 0 deviance)
    def deviance_stage1(self, theta: np.ndarray) -> float:
        self.nfev += 1
        # a start for stage 2: lme4's PIRLS tolerance; the answer itself when nAGQ = 0
        tol, step_tol = (1e-12, 1e-9) if self.nAGQ == 0 else (1e-8, 1e-5)
        try:
            fit = self.pirls(theta, self._beta, self._rescaled_u(theta), u_only=False, tol=tol, step_tol=step_tol)
        except (PIRLSError, np.linalg.LinAlgError):
            self.last_fit = None
            return np.inf
        self._beta, self._u = fit.beta, fit.u
        self._u_at = (np.array(theta, dtype=float), fit.state.sqrtw)
        self.last_fit = fit
        return laplace_deviance(self.resp, fit)

    def stage1_value_slope(self, theta: float) -> tuple[float, float | None]:
        """The stage-1 deviance at a scalar θ and its exact derivative (None if unavailable)."""
        f = self.deviance_stage1(np.array([theta]))
        if not np.isfinite(f):
            return f, None
        out = laplace_gradient(self.pred, self.X, self.resp, self.last_fit, profiled=True)
        return f, (None if out is None else out.profiled)

    def _rescaled_u(self, theta: np.ndarray) -> np.ndarray:
        """The last modes carried to a new θ (scalar terms): a better PIRLS start for stage 1's long moves.

        For level j of a scalar term with ``S_j = Σ wᵢzᵢ²`` at the last modes (θ₀), the
        modes change with θ as ``d log u_j / d log θ = (1 − θ₀²S_j) / (1 + θ₀²S_j)``
        (from the PIRLS equations: ``b = θu`` is nearly constant for well-informed levels,
        ``u`` nearly proportional to θ for poorly informed ones); ``u_j`` is moved along
        that power law. Only the start changes: PIRLS converges to the same modes.
        """
        prev = self._u_at
        terms = self.pred.terms
        if prev is None or not all(t.k == 1 for t in terms):
            return self._u
        theta0, sqrtw = prev
        theta = np.asarray(theta, dtype=float)
        if np.any(theta <= 0) or np.any(theta0 <= 0) or np.array_equal(theta, theta0):
            return self._u
        w = sqrtw * sqrtw
        u = self._u.copy()
        for t, sl, th0, th in zip(terms, self.pred.u_slices, theta0, theta, strict=True):
            S = t.sum_by_level(w * t.Z[:, 0] ** 2)
            a = (1.0 - th0 * th0 * S) / (1.0 + th0 * th0 * S)
            u[sl] = u[sl] * (th / th0) ** a
        return u

    # -- stage 2: (θ, β); u by PIRLS; Laplace or AGQ
    def fit_at(self, theta: np.ndarray, beta: np.ndarray, u0: np.ndarray | None = None):
        return self.pirls(theta, beta, self._u if u0 is None else u0, u_only=True)

    def deviance_of(self, fit) -> float:
        if self.nAGQ > 1:
            return agq_deviance(self.pred, self.resp, fit, self.nAGQ, self.codes, self.n_levels)
        return laplace_deviance(self.resp, fit)

    def deviance_stage2_u(self, x: np.ndarray, u0: np.ndarray | None) -> tuple[float, np.ndarray | None]:
        """The deviance at ``x = (θ, β)`` and the conditional modes, PIRLS started from ``u0``
        (None: the last modes found); ``(inf, None)`` where PIRLS fails."""
        self.nfev += 1
        theta, beta = x[:self.n_theta], x[self.n_theta:]
        try:
            fit = self.fit_at(theta, beta, u0)
        except (PIRLSError, np.linalg.LinAlgError):
            self.last_fit = None
            return np.inf, None
        self._u = fit.u
        self.last_fit = fit
        return self.deviance_of(fit), fit.u

    def exact_gradient(self, fit) -> tuple[np.ndarray, np.ndarray] | None:
        """The exact gradient of the Laplace deviance at ``fit`` and the modes' derivatives
        (:func:`laplace_gradient`), or None where it is not available (AGQ, several or
        vector-valued terms, μ at R's guards)."""
        if self.nAGQ != 1 or fit is None:
            return None
        out = laplace_gradient(self.pred, self.X, self.resp, fit)
        return None if out is None else (out.grad, out.du)


def _fd_grad_hess(f, x: np.ndarray, h: np.ndarray, f0: float, diag=None, u0=None) -> tuple[np.ndarray, np.ndarray]:
    """Central finite-difference gradient and Hessian, steps ``h`` per coordinate (lme4's ``deriv12``: 1e-4).

    The diagonal from ``f(x ± hᵢeᵢ)``; each off-diagonal entry from the two
    further points ``x ± (hᵢeᵢ + hⱼeⱼ)``:
    ``Hᵢⱼ = [f(x+hᵢeᵢ+hⱼeⱼ) + f(x−hᵢeᵢ−hⱼeⱼ) − f(x±hᵢeᵢ) − f(x±hⱼeⱼ) + 2f(x)] / (2hᵢhⱼ)``,
    accurate to O(h²) like the four-point formula, with half its
    evaluations: d(d + 1) in all. ``diag = (g, hd, fp, fm, up, um)`` from
    :func:`_central_gradient` at the same point and step saves the 2d
    evaluations along the axes.

    ``f(x, start)`` returns the value and the conditional modes found from
    ``start`` (see :func:`_central_gradient`); ``u0`` are the modes at ``x``.
    The modes at ``x ± (hᵢeᵢ + hⱼeⱼ)`` start from the linear prediction
    ``u(x ± hᵢeᵢ) + u(x ± hⱼeⱼ) − u(x)``, accurate to O(h²).
    """
    d = len(x)
    H = np.empty((d, d))
    if diag is None:
        diag = _central_gradient(f, x, h, f0, u0)
    g, hd, fp, fm, up, um = diag
    g = g.copy()
    H[np.diag_indices(d)] = hd
    for i in range(d):
        for j in range(i):
            e = np.zeros(d)
            e[i], e[j] = h[i], h[j]
            fpp = f(x + e, _predict(up[i], up[j], u0))[0]
            fmm = f(x - e, _predict(um[i], um[j], u0))[0]
            v = (fpp + fmm - fp[i] - fm[i] - fp[j] - fm[j] + 2 * f0) / (2 * h[i] * h[j])
            H[i, j] = H[j, i] = v
    return g, H


def _predict(ua, ub, u0):
    """``ua + ub − u0`` (a linear prediction of the modes), or ``u0`` when one is missing."""
    if u0 is None or ua is None or ub is None:
        return u0
    return ua + ub - u0


@dataclass
class GlmerOptim:
    theta: np.ndarray
    beta: np.ndarray
    fun: float
    hessian: np.ndarray | None  # of the deviance over (θ, β), at the optimum
    converged: bool
    message: str
    nfev: int
    max_grad: float


def _central_gradient(f, x: np.ndarray, h, f0: float, u0=None, D=None):
    """Central-difference gradient, the Hessian's diagonal and the values ``f(x ± hᵢ eᵢ)`` (2d evaluations;
    ``h`` one step or one per coordinate).

    ``f(x, start)`` returns ``(value, u)``: the deviance and the conditional
    modes PIRLS found starting from ``start`` (None: the last ones). ``x + heᵢ``
    starts from the modes ``u0`` at ``x``, moved by ``h Dᵢ`` when ``D``
    (the modes' derivatives, :func:`_mode_slopes`, at a nearby point) is
    given; ``x − heᵢ`` from the extrapolation ``2u0 − u(x + heᵢ)``, accurate
    to O(h²). Better starts save PIRLS iterations, not accuracy: PIRLS
    iterates to the same convergence criterion from any start.
    Also returns the modes at ``x ± heᵢ`` (for the Hessian's starts).
    """
    d = len(x)
    hs = np.broadcast_to(np.asarray(h, dtype=float), (d,))
    g, hd, fp, fm = np.empty(d), np.empty(d), np.empty(d), np.empty(d)
    up, um = [None] * d, [None] * d
    for i in range(d):
        e = np.zeros(d)
        e[i] = hi = hs[i]
        fp[i], up[i] = f(x + e, u0 if u0 is None or D is None else u0 + hi * D[:, i])
        fm[i], um[i] = f(x - e, u0 if u0 is None or up[i] is None else 2.0 * u0 - up[i])
        g[i] = (fp[i] - fm[i]) / (2 * hi)
        hd[i] = (fp[i] - 2 * f0 + fm[i]) / hi ** 2
    return g, hd, fp, fm, up, um


def _mode_slopes(diag, h: float):
    """The derivatives of the conditional modes along each axis, ``(u(x + heᵢ) − u(x − heᵢ)) / 2h``
    from :func:`_central_gradient`'s output (None if an evaluation failed)."""
    up, um = diag[4], diag[5]
    if any(v is None for v in up) or any(v is None for v in um):
        return None
    return (np.column_stack(up) - np.column_stack(um)) / (2.0 * h)


def _newton_step(g: np.ndarray, H: np.ndarray, free: np.ndarray) -> np.ndarray:
    """−H⁻¹g on the free parameters, with H's eigenvalues bounded away from 0 (a descent step)."""
    step = np.zeros_like(g)
    if not free.any():
        return step
    evals, evecs = np.linalg.eigh(H[np.ix_(free, free)])
    floor = max(1e-8, 1e-8 * float(np.max(np.abs(evals))))
    step[free] = -(evecs @ ((evecs.T @ g[free]) / np.maximum(np.abs(evals), floor)))
    return step


class _FiniteDifferences:
    """Stage 2's derivatives by central differences of the deviance (any model).

    ``gradient`` costs 2d PIRLS solves (and gives the Hessian's diagonal and
    the modes' slopes, used as warm starts); ``hessian`` at the same point
    d(d + 1) more (:func:`_fd_grad_hess`, with steps scaled to each coordinate).
    """

    def __init__(self, model: GlmerModel, h: float) -> None:
        self.f, self.h = model.deviance_stage2_u, h
        self.cache, self.D = None, None

    def gradient(self, x, fx, ux) -> np.ndarray:
        self.cache = _central_gradient(self.f, x, self.h, fx, ux, self.D)
        self.D = _mode_slopes(self.cache, self.h)
        return self.cache[0]

    def curvature(self, x, fx, ux) -> np.ndarray:
        """The Hessian's diagonal at the point of the last :meth:`gradient`."""
        return self.cache[1]

    def hessian(self, x, fx, ux) -> tuple[np.ndarray, np.ndarray]:
        """Gradient and Hessian at the point of the last :meth:`gradient`, by central differences
        (:func:`_fd_grad_hess`) with steps of 3 % of each coordinate's standard error (estimated
        from the diagonal at step ``h``), between ``h`` and 0.1: d(d + 1) evaluations.

        Second differences with lme4's fixed step 1e-4 lose ``ε|f| / h²`` to rounding and PIRLS's
        tolerance: at a deviance of 56,000 (chapter 8's crossed Poisson model) the 4th–5th digit
        of a standard error. With the scaled steps the standard errors of that model and of
        VerbAgg's crossed one agree with a Richardson extrapolation at 20 % of a standard error
        (twice the evaluations; ``tests/test_glmer.py``) to 4e-8 and 1.6e-6.
        """
        g, hd = self.cache[0], np.abs(self.cache[1])  # the gradient stays the one at step h
        steps = np.clip(0.03 * np.sqrt(2.0 / np.maximum(hd, 1e-300)), self.h, 0.1)
        return g.copy(), _fd_grad_hess(self.f, x, steps, fx, u0=ux)[1]

    def start(self, ux, dx):
        """PIRLS's start for the modes at ``x + dx``."""
        return ux if self.D is None else ux + self.D @ dx

    def small_step(self, decrement: float, step: np.ndarray, x: np.ndarray, fx: float) -> bool:
        """Stop the quasi-Newton steps: the predicted decrease is below 1e-12 of the deviance."""
        return decrement < 1e-12 * (abs(fx) + 1.0)

    def within_rounding(self, f_new: float, fx: float) -> bool:
        """Whether ``f_new`` equals ``fx`` within rounding (only exact gradients can go on from there)."""
        return False

    def gradient_shrinks(self, x, fx, ux, g) -> bool:  # pragma: no cover - needs within_rounding
        return False


class _ExactGradient(_FiniteDifferences):
    """Stage 2's derivatives from the exact gradient (:func:`laplace_gradient`; one term).

    ``gradient`` costs no PIRLS solve beyond the one at ``x``; ``hessian`` is
    the central difference of exact gradients, 2d solves, and free of the
    rounding error of second differences of the deviance (which, with step
    1e-4 at a deviance of 1e6, reaches the 6th significant digit of a
    standard error). Where the exact gradient is unavailable (μ at R's
    guards), finite differences take over at that point.
    """

    def __init__(self, model: GlmerModel, h: float) -> None:
        super().__init__(model, h)
        self.model = model
        self.last = None  # (x, g): the last exact gradient

    def _exact(self, x, u0):
        """The exact gradient and the modes' derivatives at ``x`` (one PIRLS solve from ``u0``), or None."""
        f, _ = self.f(x, u0)
        return self.model.exact_gradient(self.model.last_fit) if np.isfinite(f) else None

    def gradient(self, x, fx, ux) -> np.ndarray:
        if self.last is not None and np.array_equal(self.last[0], x):
            return self.last[1]
        fit = self.model.last_fit  # the line search's accepted point is its last evaluation
        at_x = fit is not None and np.array_equal(np.concatenate([fit.theta, fit.beta]), x)
        out = self.model.exact_gradient(fit) if at_x else self._exact(x, ux)
        if out is None:
            self.last = None
            return super().gradient(x, fx, ux)
        self.cache, self.D = None, out[1]
        self.last = (x.copy(), out[0])
        return out[0]

    def small_step(self, decrement: float, step: np.ndarray, x: np.ndarray, fx: float) -> bool:
        """Stop when the step is below 1e-9 (relative to 1 + |x|): with exact gradients the optimum
        is found to that precision whatever the path, so the Hessian (for vcov) is taken at the
        same point to ~1e-9 and the printed digits do not depend on the start."""
        return bool(np.all(np.abs(step) <= 1e-9 * (1.0 + np.abs(x))))

    def within_rounding(self, f_new: float, fx: float) -> bool:
        return abs(f_new - fx) <= 1e-14 * (abs(fx) + 1.0)

    def gradient_shrinks(self, x, fx, ux, g) -> bool:
        return bool(np.linalg.norm(self.gradient(x, fx, ux)) < np.linalg.norm(g))

    def _differences(self, x, ux, axes):
        """The columns ``(g(x + heᵢ) − g(x − heᵢ)) / 2h`` for ``i`` in ``axes`` (None if one is unavailable)."""
        d = len(x)
        cols = np.empty((d, len(axes)))
        for c, i in enumerate(axes):
            e = np.zeros(d)
            e[i] = self.h
            gp = self._exact(x + e, self.start(ux, e))
            gm = self._exact(x - e, self.start(ux, -e))
            if gp is None or gm is None:
                return None
            cols[:, c] = (gp[0] - gm[0]) / (2.0 * self.h)
        return cols

    def curvature(self, x, fx, ux) -> np.ndarray:
        """The θ part of the Hessian's diagonal by forward differences of the exact gradient (1 for β;
        only the first quasi-Newton step's scale needs it)."""
        if self.last is None:
            return super().curvature(x, fx, ux)
        hd = np.ones(len(x))
        for i in range(self.model.n_theta):
            e = np.zeros(len(x))
            e[i] = self.h
            out = self._exact(x + e, self.start(ux, e))
            if out is not None:
                hd[i] = (out[0][i] - self.last[1][i]) / self.h
        return hd

    def hessian(self, x, fx, ux) -> tuple[np.ndarray, np.ndarray]:
        g = self.gradient(x, fx, ux)  # exact (remembered) unless μ sits at R's guards at x
        if self.last is not None:
            H = self._differences(x, ux, range(len(x)))
            if H is not None:
                return g, 0.5 * (H + H.T)
            self.last = None
            _FiniteDifferences.gradient(self, x, fx, ux)
        return super().hessian(x, fx, ux)


def _cubic_min(p0: tuple[float, float, float], p1: tuple[float, float, float]) -> float:
    """The minimiser of the cubic through values and slopes ``(t, f, g)`` at two points (NaN if none)."""
    (t0, f0, g0), (t1, f1, g1) = p0, p1
    if t0 == t1:
        return np.nan
    d1 = g0 + g1 - 3.0 * (f0 - f1) / (t0 - t1)
    disc = d1 * d1 - g0 * g1
    if disc < 0:
        return np.nan
    d2 = np.copysign(np.sqrt(disc), t1 - t0)
    den = g1 - g0 + 2.0 * d2
    return t1 - (t1 - t0) * (g1 + d2 - d1) / den if den != 0 else np.nan


def _stage1_scalar(model: GlmerModel, t0: float, xtol: float = 1e-4) -> tuple[float, float | None] | None:
    """Stage 1's θ for one scalar θ, from the deviance and its exact slope
    (:meth:`GlmerModel.stage1_value_slope`).

    From ``t0``, steps up or down (1.5 times the secant step of the slopes,
    by factors between 1.25 and 4) until the slope changes sign; then
    the minimiser of the cubic through the values and slopes of the two latest
    points (or else of the bracket's ends; else the bracket's midpoint)
    replaces the end with the slope of its sign, until θ moves by less than
    ``xtol`` (Nocedal & Wright 2006, eq. 3.59). This takes about
    half the deviance evaluations of Brent's minimiser on the values alone.
    When the slope stays positive down to θ = 1e-4 the minimum is at (or next
    to) the boundary θ = 0, and that small θ is returned: stage 2 finishes.

    Returns ``(θ, curvature)``, the curvature (the secant of the last two
    slopes, None if there were none) scaling stage 2's first step; or None
    if a slope is unavailable (the caller then minimises the values).
    """

    def fg(t: float) -> tuple[float, float]:
        f, g = model.stage1_value_slope(t)
        if g is None or not np.isfinite(g):
            raise PIRLSError("no exact slope")
        return f, g

    try:
        t = t0
        f, g = fg(t)
        lo, hi, prev = None, None, None
        while True:
            if g < 0:
                lo = (t, f, g)
            else:
                hi = (t, f, g)
            if lo is not None and hi is not None:
                break
            # no bracket yet: 1.5 times the secant-Newton step (to overshoot the root), between
            # 1.25 and 4 times θ away from it; the first step is a factor of 1.5
            up = g < 0
            factor = 1.5
            if prev is not None and (g - prev[2]) / (t - prev[0]) > 0:
                t_newton = t - 1.5 * g * (t - prev[0]) / (g - prev[2])
                # (a step to θ ≤ 0 means the slopes point to the boundary: the largest factor)
                factor = 4.0 if t_newton <= 0 else float(np.clip(t_newton / t if up else t / t_newton, 1.25, 4.0))
            elif prev is not None:
                factor = 4.0
            prev = (t, f, g)
            t = t * factor if up else t / factor
            if t < 1e-4 or t > 1e3:
                return prev[0], None
            f, g = fg(t)
        last = [prev, (t, f, g)]  # the two most recent points (for the local cubic)
        t = None
        for _ in range(60):
            (a, _, ga), (b, _, gb) = lo, hi
            (t_a, _, g_a), (t_b, _, g_b) = last
            curvature = (g_b - g_a) / (t_b - t_a)
            if ga == 0.0 or gb == 0.0:
                return (a if ga == 0.0 else b), curvature
            width = abs(b - a)
            cands = [c for c in (_cubic_min(*last), _cubic_min(lo, hi)) if min(a, b) <= c <= max(a, b)]
            if t is not None and cands and abs(cands[0] - t) < xtol:
                return float(cands[0]), curvature  # converged: the next step would be shorter than xtol
            inside = [c for c in cands if min(a, b) + 1e-3 * width < c < max(a, b) - 1e-3 * width]
            t = inside[0] if inside else 0.5 * (a + b)
            f, g = fg(t)
            last = [last[1], (t, f, g)]
            if g < 0:
                lo = (t, f, g)
            else:
                hi = (t, f, g)
            if width < xtol:
                return float(t), None
        return float(t), None
    except PIRLSError:
        return None


def _has_exact_gradient(model: GlmerModel) -> bool:
    """Whether :func:`laplace_gradient` applies: the Laplace approximation and one random-effects term."""
    return model.nAGQ == 1 and len(model.pred.terms) == 1


def _optimize(model: GlmerModel, beta0: np.ndarray, theta0: np.ndarray) -> GlmerOptim:
    """lme4's two stages: θ with β by PIRLS, then (θ, β) jointly.

    Stage 1 minimises the ``nAGQ = 0`` deviance over θ: for one scalar term
    by the root of its exact slope (:func:`_stage1_scalar`), else bounded
    Brent for one parameter and L-BFGS-B for several. Stage 2 minimises the
    Laplace/AGQ deviance over (θ, β) from there by quasi-Newton steps:
    gradients exact (one term, Laplace: :func:`laplace_gradient`) or
    by central differences (step 1e-4, lme4's ``deriv12``), BFGS updates of a
    Hessian that starts from the curvature of θ and ``2 R_X R_Xᵀ`` for β. The
    Hessian for ``vcov`` (central differences of the exact gradient, or of
    the deviance with steps of 3 % of each standard error) is computed at the
    optimum and checks it: a Newton decrement above 1e-10 (relative) sends
    the search on with that Hessian.
    """
    k = model.n_theta
    is_diag = model.is_diag
    # Stage 1 ------------------------------------------------------------------
    model._beta = beta0.copy()
    model.beta_start = beta0.copy()
    f1 = model.deviance_stage1
    with np.errstate(all="ignore"):
        stage1 = (_stage1_scalar(model, float(theta0[0]))
                  if k == 1 and model.nAGQ >= 1 and _scalar_term(model.pred) is not None else None)
        curvature1 = None
        if stage1 is not None:
            theta1, curvature1 = np.array([stage1[0]]), stage1[1]
        elif k == 1:
            upper = 2.0
            while upper < 1e3 and f1(np.array([upper])) < f1(np.array([upper / 2])):
                upper *= 2
            res = optimize.minimize_scalar(lambda t: f1(np.array([t])), bounds=(0.0, upper), method="bounded",
                                           options={"xatol": 1e-8 if model.nAGQ == 0 else 1e-3})
            theta1 = np.array([float(res.x)])
        else:
            bounds = [(0.0, None) if d else (None, None) for d in is_diag]
            res = optimize.minimize(f1, theta0, method="L-BFGS-B", bounds=bounds,
                                    options={"ftol": 1e-12 if model.nAGQ == 0 else 1e-8, "eps": 1e-5})
            theta1 = np.asarray(res.x, dtype=float)
        try:
            fit1 = model.pirls(theta1, model._beta, model._u, u_only=False)
        except np.linalg.LinAlgError:
            raise PIRLSError(f"PIRLS failed at the end of the first optimisation stage, theta = "
                             f"{np.round(theta1, 6).tolist()}: the weighted cross-product matrix is not "
                             "positive definite.") from None
    beta1 = fit1.beta.copy()
    model._beta, model._u = beta1, fit1.u
    if model.nAGQ == 0:
        return GlmerOptim(theta=theta1, beta=beta1, fun=laplace_deviance(model.resp, fit1), hessian=None,
                          converged=True, message="nAGQ = 0: stage 1 only", nfev=model.nfev, max_grad=0.0)
    try:
        RX = fit1.fac.RX
        B_beta = 2.0 * RX @ RX.T
    except np.linalg.LinAlgError:
        B_beta = np.eye(model.p)
    # Stage 2 ------------------------------------------------------------------
    f2 = model.deviance_stage2_u
    x = np.concatenate([theta1, beta1])
    d = len(x)
    lower = np.concatenate([np.where(is_diag, 0.0, -np.inf), np.full(model.p, -np.inf)])
    h = 1e-4
    fx, ux = f2(x, None)
    if not np.isfinite(fx):
        raise PIRLSError("PIRLS failed at the starting values of the second optimisation stage.")
    exact = _has_exact_gradient(model)
    deriv = _ExactGradient(model, h) if exact else _FiniteDifferences(model, h)
    converged, message, H = False, "", None
    with np.errstate(all="ignore"):
        g = deriv.gradient(x, fx, ux)
        # θ's curvature for the first step: stage 1's (β profiled, so at most the full one) if it has one
        hd = (np.array([curvature1]) if curvature1 is not None and curvature1 > 0
              else deriv.curvature(x, fx, ux))
        B = np.zeros((d, d))
        B[:k, :k] = np.diag(np.where(hd[:k] > 0, hd[:k], 1.0))
        B[k:, k:] = B_beta
        for _phase in range(4):  # quasi-Newton; then Newton with the Hessian
            for _ in range(200):
                free = ~((x <= lower + 1e-12) & (g > 0))
                step = _newton_step(g, B, free)
                decrement = float(-g @ step)
                if not np.isfinite(decrement):
                    message = "non-finite gradient"
                    break
                if deriv.small_step(decrement, step, x, fx):
                    break
                t, accepted = 1.0, False
                for _ls in range(40):
                    x_new = np.maximum(x + t * step, lower)
                    f_new, u_new = f2(x_new, deriv.start(ux, x_new - x))
                    if np.isfinite(f_new) and f_new < fx:
                        accepted = True
                        break
                    if np.isfinite(f_new) and deriv.within_rounding(f_new, fx):
                        # no measurable change of the deviance: accept if the gradient shrinks, else stop
                        accepted = deriv.gradient_shrinks(x_new, f_new, u_new, g)
                        break
                    t *= 0.5
                if not accepted:
                    break
                g_new = deriv.gradient(x_new, f_new, u_new)
                s_, y_ = x_new - x, g_new - g
                if s_ @ y_ > 1e-12 * np.linalg.norm(s_) * np.linalg.norm(y_):
                    Bs = B @ s_
                    B = B - np.outer(Bs, Bs) / (s_ @ Bs) + np.outer(y_, y_) / (s_ @ y_)
                x, fx, g, ux = x_new, f_new, g_new, u_new
            # the Hessian at this point (for vcov, and to check and polish the optimum)
            g, H = deriv.hessian(x, fx, ux)
            free = ~((x <= lower + 1e-12) & (g > 0))
            step = _newton_step(g, H, free)
            if float(-g @ step) < 1e-10 * (abs(fx) + 1.0):
                converged = True
                break
            B = H
            g = deriv.gradient(x, fx, ux)
        else:
            message = "the Newton decrement did not fall below 1e-10 (relative)"
    model._u = ux  # the modes at the optimum: the warm start of any later evaluation
    max_grad = float(np.max(np.abs(g[~((x <= lower + 1e-12) & (g > 0))]), initial=0.0))
    return GlmerOptim(theta=x[:k].copy(), beta=x[k:].copy(), fun=fx, hessian=H, converged=converged,
                      message=message, nfev=model.nfev, max_grad=max_grad)


def glm_start(X: np.ndarray, resp: GLMResponse, maxit: int = 50) -> np.ndarray:
    """β of the GLM without random effects (IRLS from R's ``mustart``), the stage-1 start.

    Each IRLS step solves the weighted normal equations (cheaper than a
    least-squares solve by SVD; squaring X's condition number only matters
    for the start's last digits), by least squares if they are singular.
    """
    eta = resp.start_eta()
    beta = np.zeros(X.shape[1])
    dev_old = np.inf
    st = resp.update(eta)
    for _ in range(maxit):
        z = eta - resp.offset + st.wres
        Xw = X * st.sqrtw[:, None]
        try:
            beta_new = np.linalg.solve(Xw.T @ Xw, Xw.T @ (st.sqrtw * z))
        except np.linalg.LinAlgError:
            beta_new = np.full(X.shape[1], np.nan)
        if not np.all(np.isfinite(beta_new)):
            beta_new, *_ = np.linalg.lstsq(Xw, st.sqrtw * z, rcond=None)
        eta = resp.offset + X @ beta_new
        st = resp.update(eta)  # the deviance here, and the next iteration's weights
        dev = st.dev
        if not np.isfinite(dev):
            break
        beta = beta_new
        if abs(dev_old - dev) < 1e-10 * (abs(dev) + 0.1):
            break
        dev_old = dev
    return beta


def _start_theta(model: GlmerModel, beta0: np.ndarray) -> np.ndarray:
    """θ to start from: lme4's (1 on the diagonal, 0 off it), or for a single scalar term the moment
    estimate of :func:`~mlmhelpers.glm_response.moment_theta` (kept within [0.05, 20])."""
    theta = model.pred.theta0
    m = moment_theta(model.pred, model.X, model.resp, beta0)
    if m is not None and np.isfinite(m):
        theta = np.array([min(max(m, 0.05), 20.0)])
    return theta


def _build(formula: str, data: pd.DataFrame, family, weights, offset, nAGQ):
    fam = get_family(family)
    mf = model_frame(formula, data, fam, weights=weights, offset=offset)
    frame = mf.frame.copy()
    frame[_RESPONSE_COL] = mf.y
    parsed = ParsedFormula(response=_RESPONSE_COL, fixed=mf.parsed.fixed, random=mf.parsed.random, formula=formula)
    design = build_design(parsed, frame, require_random=True, check_nobs=False, complete=True)
    if design.X.shape[1] >= design.X.shape[0]:
        raise ValueError(f"{design.X.shape[1]} fixed effects for {design.X.shape[0]} observations: "
                         "too few observations.")
    # Column-major X (so X.T is row-major: level sums of X's columns run over contiguous memory)
    design = dataclasses.replace(design, X=np.asfortranarray(design.X))
    pred = LinearPredictor(design.X, design.terms, qr=design.x_qr)
    resp = GLMResponse(mf.y, fam, weights=mf.weights, offset=mf.offset)
    return fam, mf, design, pred, resp


def glmer(formula: str, data: pd.DataFrame, family="binomial", nAGQ: int = 1, weights=None, offset=None, *,
          data_name: str | None = None):
    """Fit a generalized linear mixed model (binomial or Poisson), as R's ``lme4::glmer``.

    Parameters
    ----------
    formula : str
        An lme4 formula with the random-effects syntax of :func:`lmer`,
        e.g. ``"y ~ x + (1 | g)"``. Binomial responses: 0/1 numbers, a
        boolean, or a two-level factor (the first level is failure, as in
        R); proportions with ``weights`` giving the trials; or
        ``cbind(successes, failures)``. Offsets: ``offset(log(exposure))``
        in the formula and/or ``offset=``.
    data : DataFrame
        Never modified. Rows with a missing value in a model variable are
        dropped with a warning (R's ``na.omit``).
    family : {"binomial", "poisson"} or Family, default "binomial"
        ``mlmhelpers.binomial(link)`` with link ``"logit"``, ``"probit"`` or
        ``"cloglog"``; ``mlmhelpers.poisson()`` (log link).
    nAGQ : int, default 1
        1: Laplace approximation. > 1: adaptive Gauss–Hermite quadrature
        with that many nodes, for one scalar random effect only (as lme4).
        0: lme4's fast first stage only (β estimated inside PIRLS).
    weights : str or array-like, optional
        Prior weights: a column name or one value per row; for a
        proportion response, the numbers of trials.
    offset : str or array-like, optional
        Added to the linear predictor (with any ``offset()`` of the formula).
    data_name : str, optional
        Shown after ``Data:`` in ``summary()``.

    Returns
    -------
    GlmerResult

    Raises
    ------
    ValueError, TypeError
        Bad formula or data: a binomial response outside [0, 1], a
        non-integer number of successes, negative Poisson counts, an unknown
        family or link, ``nAGQ > 1`` with a vector-valued or several random
        effects, missing columns, a single-level grouping factor.
    PIRLSError
        The conditional modes could not be found (said in words).

    Warns
    -----
    SeparationWarning
        Fitted probabilities numerically 0 or 1 (perfect separation).
    SingularFitWarning, ConvergenceWarning
        As :func:`lmer`.
    UserWarning
        Non-integer Poisson counts (as lme4's "non-integer x").

    Notes
    -----
    R equivalent: ``lme4::glmer(formula, data, family = binomial, nAGQ = 1)``.

    The algorithm is lme4's (Bates, Mächler, Bolker & Walker 2015, section
    5): penalised iteratively reweighted least squares (PIRLS) with
    step-halving gives the conditional modes of the random effects; the
    Laplace approximation (or AGQ) of the deviance is minimised first over θ
    with β estimated inside PIRLS (lme4's ``nAGQ = 0`` stage), then over
    (θ, β) jointly, here by quasi-Newton steps (lme4 uses bobyqa then
    Nelder–Mead). ``vcov`` uses the Hessian of that last stage, as lme4's
    default. For a single random-effects term with the Laplace
    approximation, the derivatives are exact (the implicit-function gradient
    of :func:`~mlmhelpers.glm_response.laplace_gradient`; the Hessian is its
    central difference), so the optimum and the standard errors do not
    depend on the path to them; otherwise they are central differences of
    the deviance (lme4's step 1e-4 for the gradient, 3 % of each standard
    error for the Hessian, where a step of 1e-4 would lose digits to rounding).

    Two deliberate differences from lme4 1.1: the Laplace deviance uses
    ``log |L|²`` at the IRLS weights of the conditional modes (lme4 at the
    weights of the previous PIRLS iteration, which moves its deviance by
    about 1e-3 and its Hessian-based standard errors by up to ~1%), and the
    AGQ log-likelihood includes the normalising constant of the response
    distribution (lme4 issue #161), so it is comparable with Laplace fits.

    Examples
    --------
    >>> import mlmhelpers as mh
    >>> d = mh.load_arrests().assign(arrests=lambda d: (d.violent_arrest_per1000 * d.pop_tot / 1000).round())
    >>> m = mh.glmer("arrests ~ pop_pct_pov + offset(log(pop_tot)) + (1 | stusps)", d, family="poisson")
    >>> m.fixef.round(4).tolist()
    [-7.0516, 0.0706]
    >>> round(m.loglik, 1)  # lme4: 'log Lik.' -427546.8 (df=3)
    -427546.8
    >>> bool(mh.check_overdispersion(m)["ratio"] > 100)  # far more variation than Poisson allows
    True
    """
    if not (isinstance(nAGQ, (int, np.integer)) and not isinstance(nAGQ, bool)) or nAGQ < 0:
        raise ValueError(f"nAGQ must be a non-negative whole number, got {nAGQ!r}.")
    nAGQ = int(nAGQ)
    fam, mf, design, pred, resp = _build(formula, data, family, weights, offset, nAGQ)
    terms = pred.terms
    if nAGQ > 1 and (len(terms) != 1 or terms[0].k != 1):
        raise ValueError("nAGQ > 1 is only available for models with a single, scalar random-effects term "
                         f"(this model has {sum(t.k for t in terms)} random effects per level over "
                         f"{len(terms)} grouping factor(s)); use nAGQ=1 (Laplace).")
    codes = terms[0].codes if nAGQ > 1 else None
    model = GlmerModel(pred, design.X, resp, nAGQ, codes, terms[0].nlevels if nAGQ > 1 else None)
    beta0 = glm_start(design.X, resp)
    opt = _optimize(model, beta0, _start_theta(model, beta0))
    fit = model.fit_at(opt.theta, opt.beta)
    from .glmer_result import GlmerResult

    result = GlmerResult(formula=formula, family=fam, nAGQ=nAGQ, mf=mf, design=design, terms=terms, pred=pred,
                         X=design.X, resp=resp, fit=fit, opt=opt, data_name=data_name or "data")
    result._data = data
    if fam.family == "binomial":
        mu = fit.state.mu
        eps = 10 * np.finfo(float).eps
        if np.any((mu < eps) | (mu > 1 - eps)):
            warn("fitted probabilities numerically 0 or 1 occurred: possible (quasi-)complete "
                          "separation; estimates of the separating effects are not finite.",
                 SeparationWarning)
    if result.is_singular:
        warn("boundary (singular) fit: see help('isSingular')", SingularFitWarning)
    elif not opt.converged:
        warn(f"Model failed to converge: {opt.message}", ConvergenceWarning)
    return result
