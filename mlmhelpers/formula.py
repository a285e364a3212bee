"""Parse ``lme4`` model formulas and build design matrices.

Only the random-effect terms ``( ... | group )`` and ``( ... || group )`` are
parsed here. Everything else (the response, the fixed-effect part, the
expressions inside a random term) is handed to :mod:`formulaic`, a maintained
formula library, so ``C()``, interactions, ``-1``/``0 +`` and transformations
such as ``np.log(x)`` behave as documented there. R's ``factor(x)`` is
accepted as a synonym of ``C(x)`` and columns are named the way R names them
(``(Intercept)``, ``factor(stusps)AL``) so that tables read like R output.
"""

from __future__ import annotations

import functools
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from formulaic import Formula, model_matrix
from formulaic.errors import DataMismatchWarning, FormulaicError

from .design import RandomEffectsTerm, independent_columns_qr
from .messages import RankDeficiencyWarning, RowsDroppedWarning, warn

__all__ = ["RandomTerm", "ParsedFormula", "parse_formula", "DesignMatrices", "build_design"]


@dataclass(frozen=True)
class RandomTerm:
    """One random-effect term ``(expr | group)``.

    Attributes
    ----------
    expr : str
        The model expression left of the bar, e.g. ``"1 + x"``.
    group : str
        The grouping variable right of the bar.
    correlated : bool
        ``False`` for the double-bar form ``(expr || group)``, which lme4
        expands into one uncorrelated term per column.
    """

    expr: str
    group: str
    correlated: bool = True

    def __str__(self) -> str:
        bar = "|" if self.correlated else "||"
        return f"({self.expr} {bar} {self.group})"

    def factors(self) -> list[tuple[str, tuple[str, ...]]]:
        """The grouping factors of this term as ``(name, columns)``, ``a/b`` expanded.

        lme4 expands ``(e | a/b)`` into ``(e | a) + (e | b:a)`` and names the
        inner factor ``b:a``; ``a/b/c`` adds ``c:(b:a)``.

        Examples
        --------
        >>> from mlmhelpers.formula import RandomTerm
        >>> RandomTerm("1", "stusps/county").factors()
        [('stusps', ('stusps',)), ('county:stusps', ('county', 'stusps'))]
        >>> RandomTerm("1", "`my group`").factors()
        [('my group', ('my group',))]
        """
        out = []
        prev_name, prev_cols = None, ()
        for part in _split_group(self.group, "/"):
            cols = tuple(_group_column(c, self.group) for c in _split_group(part, ":"))
            if prev_name is None:
                name, allcols = ":".join(cols), cols
            else:
                inner = f"({prev_name})" if ":" in prev_name else prev_name
                name, allcols = f"{':'.join(cols)}:{inner}", cols + prev_cols
            out.append((name, allcols))
            prev_name, prev_cols = name, allcols
        return out


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split into response, fixed part and random terms."""

    response: str
    fixed: str
    random: tuple[RandomTerm, ...] = field(default_factory=tuple)
    formula: str = ""


_FACTOR_RE = re.compile(r"(?<![\w.])factor\(")


def _to_formulaic(expr: str) -> str:
    """Translate R spellings that formulaic reads differently.

    * ``factor(x)`` becomes formulaic's ``C(x)``.
    * ``^`` inside a function call (``I(x^2)``, ``log(x^2)``) is R's arithmetic power; formulaic
      evaluates the call as Python, where ``^`` is a bitwise XOR, so it becomes ``**``. Outside
      calls, ``^`` is formula algebra (``(a + b)^2``: main effects and their interaction), which
      formulaic already reads as R does, so it is left alone. Quoted text and backquoted names
      are copied unchanged.
    """
    expr = _FACTOR_RE.sub("C(", expr)
    out: list[str] = []
    stack: list[bool] = []  # for each open bracket: is it a function call's?
    quote: str | None = None
    prev = ""  # last character outside quotes that is not white space
    for ch in expr:
        if quote:
            out.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "'\"`":
            quote = ch
        elif ch == "(":
            stack.append(bool(prev) and (prev.isalnum() or prev in "_.`"))
        elif ch == ")":
            if stack:
                stack.pop()
        elif ch == "^" and any(stack):
            out.append("**")
            prev = "*"
            continue
        out.append(ch)
        if not ch.isspace():
            prev = ch
    return "".join(out)


def _split_top_level(text: str, sep: str) -> list[str]:
    """Split ``text`` at ``sep`` characters that are not inside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                raise ValueError(f"Malformed formula: unbalanced ')' in {text!r}.")
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise ValueError(f"Malformed formula: unbalanced '(' in {text!r}.")
    parts.append(text[start:])
    return parts


def parse_formula(formula: str) -> ParsedFormula:
    """Split an ``lme4`` formula into response, fixed part and random terms.

    Parameters
    ----------
    formula : str
        A formula such as ``"y ~ x + (1 + x | g)"``.

    Returns
    -------
    ParsedFormula

    Raises
    ------
    ValueError
        If the formula has no ``~``, no response, unbalanced brackets, or a
        bar term that is not of the form ``(expr | group)``.

    Examples
    --------
    >>> from mlmhelpers.formula import parse_formula
    >>> p = parse_formula("salary ~ experience + (1 + experience | department)")
    >>> p.response, p.fixed, str(p.random[0])
    ('salary', 'experience', '(1 + experience | department)')

    Notes
    -----
    R's lme4 does the same split with ``lme4::findbars()`` and
    ``lme4::nobars()``.
    """
    if not isinstance(formula, str):
        raise TypeError(f"formula must be a string, got {type(formula).__name__}.")
    sides = _split_top_level(formula, "~")
    if len(sides) != 2:
        raise ValueError(
            f"Malformed formula {formula!r}: expected exactly one '~' separating "
            "the response from the predictors, e.g. 'y ~ x + (1 | g)'."
        )
    response, rhs = sides[0].strip(), sides[1].strip()
    if not response:
        raise ValueError(f"Malformed formula {formula!r}: no response left of '~'.")
    if not rhs:
        raise ValueError(f"Malformed formula {formula!r}: nothing right of '~'.")

    fixed_terms: list[str] = []
    random_terms: list[RandomTerm] = []
    for raw in _split_top_level(rhs, "+"):
        term = raw.strip()
        if not term:
            raise ValueError(f"Malformed formula {formula!r}: empty term between '+' signs.")
        inner = _strip_outer_parens(term)
        if inner is not None and "|" in _top_level_chars(inner):
            random_terms.append(_parse_bar(inner, formula))
        elif "|" in _top_level_chars(term):
            raise ValueError(
                f"Malformed formula {formula!r}: the random-effect term {term!r} "
                "must be wrapped in parentheses, e.g. '(1 | g)'."
            )
        else:
            fixed_terms.append(term)
    fixed = " + ".join(fixed_terms) if fixed_terms else "1"
    return ParsedFormula(response=response, fixed=fixed, random=tuple(random_terms), formula=formula)


def _strip_outer_parens(term: str) -> str | None:
    """Return the inside of ``( ... )`` if the parentheses enclose the whole term."""
    if not (term.startswith("(") and term.endswith(")")):
        return None
    depth = 0
    for i, ch in enumerate(term):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(term) - 1:
            return None
    return term[1:-1]


def _top_level_chars(text: str) -> str:
    """The characters of ``text`` that lie outside any brackets."""
    out, depth = [], 0
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _parse_bar(inner: str, formula: str) -> RandomTerm:
    correlated = "||" not in inner
    parts = inner.split("||") if not correlated else _split_top_level(inner, "|")
    if len(parts) != 2:
        raise ValueError(
            f"Malformed random-effect term '({inner})' in {formula!r}: expected "
            "'(expr | group)' or '(expr || group)' with exactly one bar."
        )
    expr, group = parts[0].strip(), parts[1].strip()
    if not expr:
        raise ValueError(
            f"Malformed random-effect term '({inner})' in {formula!r}: nothing left of "
            "the bar; write '(1 | g)' for a random intercept."
        )
    term = RandomTerm(expr=expr, group=group, correlated=correlated)
    try:
        term.factors()
    except ValueError as exc:
        raise ValueError(f"Malformed random-effect term '({inner})' in {formula!r}: {exc}") from None
    return term


_NAME_RE = re.compile(r"[A-Za-z_.][\w.]*")
_Q_RE = re.compile(r"""Q\(\s*(['"])(.*)\1\s*\)""")


def _split_group(text: str, sep: str) -> list[str]:
    """Split a grouping expression at ``sep`` outside backticks and brackets."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "`'\"":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _group_column(token: str, group: str) -> str:
    """One column of a grouping expression: a name, a `backticked name` or Q("name")."""
    if len(token) >= 2 and token[0] == token[-1] == "`":
        return token[1:-1]
    m = _Q_RE.fullmatch(token)
    if m:
        return m.group(2)
    if _NAME_RE.fullmatch(token):
        return token
    raise ValueError(
        f"the grouping factor must be column names joined by ':' (crossed) or '/' (nested), got "
        f"{group!r}; write a column name with spaces or other characters as `my col` or Q('my col')."
    )


# --------------------------------------------------------------------------- #
# Column names in R style
# --------------------------------------------------------------------------- #

_LEVEL_RE = re.compile(r"^(?P<var>.*)\[T\.(?P<level>.*)\]$")
_FULLRANK_RE = re.compile(r"^(?P<var>.*)\[(?P<level>.*)\]$")


def r_column_name(name: str, used_factor: bool = True) -> str:
    """Translate a formulaic column name into the name R would print.

    ``Intercept`` becomes ``(Intercept)``; a treatment-coded level
    ``C(g)[T.b]`` becomes ``factor(g)b`` (R's ``factor(g)`` spelling) and
    ``g[T.b]`` becomes ``gb``; interaction parts are translated one by one.

    Examples
    --------
    >>> from mlmhelpers.formula import r_column_name
    >>> r_column_name("C(stusps)[T.AL]")
    'factor(stusps)AL'
    >>> r_column_name("Intercept")
    '(Intercept)'
    """
    if name == "Intercept":
        return "(Intercept)"
    # A power written I(x^2) reaches formulaic as I(x ** 2) (see _to_formulaic); R prints I(x^2).
    name = re.sub(r"\s*\*\*\s*", "^", name)
    parts = []
    for part in _split_top_level(name, ":"):
        m = _LEVEL_RE.match(part) or _FULLRANK_RE.match(part)
        if m:
            var = m.group("var")
            if used_factor and var.startswith("C(") and var.endswith(")"):
                var = "factor(" + var[2:]
            part = f"{var}{m.group('level')}"
        parts.append(part)
    return ":".join(parts)


# --------------------------------------------------------------------------- #
# Design matrices
# --------------------------------------------------------------------------- #


@dataclass
class DesignMatrices:
    """Numeric arrays for one model, ready for fitting.

    Attributes
    ----------
    y : ndarray (n,)
    X : ndarray (n, p)
        Fixed-effects matrix, rank-deficient columns dropped.
    x_names : list of str
    terms : list of RandomEffectsTerm
        One per grouping factor, in lme4's order (empty for ``lm``).
    n_dropped : int
        Rows dropped because of missing values.
    row_index : pandas.Index
        Index labels (of the caller's data) of the rows used.
    x_spec
        formulaic model spec, to build ``X`` for new data.
    dropped_columns : list of str
        Fixed-effect columns dropped as linear combinations of earlier ones.

    Notes
    -----
    For a model with exactly one grouping factor, ``Z``, ``z_names``,
    ``z_blocks``, ``groups``, ``levels`` and ``group_name`` give that
    factor's arrays (``None`` without random effects).
    """

    y: np.ndarray
    X: np.ndarray
    x_names: list[str]
    terms: list[RandomEffectsTerm]
    n_dropped: int
    row_index: pd.Index
    x_spec: object
    dropped_columns: list[str] = field(default_factory=list)
    #: Thin QR (Q, R) of X computed by the rank check, reused by the engine (None if not available).
    x_qr: tuple | None = field(default=None, repr=False)

    def _only_term(self, what: str) -> RandomEffectsTerm | None:
        if not self.terms:
            return None
        if len(self.terms) > 1:
            names = ", ".join(t.name for t in self.terms)
            raise ValueError(f"{what} is defined for one grouping factor; this model has {len(self.terms)} "
                             f"({names}): use design.terms.")
        return self.terms[0]

    @property
    def Z(self) -> np.ndarray | None:
        t = self._only_term("Z")
        return None if t is None else t.Z

    @property
    def z_names(self) -> list[str]:
        t = self._only_term("z_names")
        return [] if t is None else t.z_names

    @property
    def z_blocks(self) -> list[tuple[int, int, bool]]:
        t = self._only_term("z_blocks")
        return [] if t is None else t.blocks

    @property
    def groups(self) -> np.ndarray | None:
        t = self._only_term("groups")
        return None if t is None else t.codes

    @property
    def levels(self) -> pd.Index | None:
        t = self._only_term("levels")
        return None if t is None else t.levels

    @property
    def group_name(self) -> str | None:
        t = self._only_term("group_name")
        return None if t is None else t.name

    def term(self, name: str) -> RandomEffectsTerm:
        """The term of grouping factor ``name``."""
        for t in self.terms:
            if t.name == name:
                return t
        raise ValueError(f"{name!r} is not a grouping factor of this model; choose from "
                         f"{[t.name for t in self.terms]}.")


def _required_variables(expr: str) -> set[str]:
    return set(_required_variables_cached(expr))


@functools.lru_cache(maxsize=512)
def _required_variables_cached(expr: str) -> frozenset[str]:
    """The variables an expression uses: a pure function of the string, memoised (formulaic's
    parser costs about a millisecond a call, and every fit asks for the same few expressions)."""
    try:
        return frozenset(Formula(_to_formulaic(expr)).required_variables)
    except FormulaicError as exc:  # pragma: no cover - message passthrough
        raise ValueError(f"Malformed formula term {expr!r}: {exc}") from None


def _check_columns(data: pd.DataFrame, names: set[str], where: str) -> None:
    missing = sorted(n for n in names if n not in data.columns)
    if missing:
        raise ValueError(
            f"Column(s) {', '.join(repr(m) for m in missing)} used in the {where} "
            f"are not in the data. Available columns: {', '.join(map(str, data.columns))}."
        )


@functools.lru_cache(maxsize=512)
def _parsed(expr: str) -> Formula:
    """formulaic's parsed formula for an R expression, memoised (parsing costs about as much
    as building a small model matrix; a Formula is not modified by building matrices from it)."""
    return Formula(_to_formulaic(expr))


def _matrix(expr: str, data: pd.DataFrame, where: str):
    try:
        with warnings.catch_warnings():
            # NumPy's "invalid value encountered in log": the rows are reported below instead.
            warnings.simplefilter("ignore", RuntimeWarning)
            return model_matrix(_parsed(expr), data, na_action="raise")
    except (FormulaicError, ValueError) as exc:
        if "null values after evaluation" in str(exc):
            _raise_undefined_transform(expr, data, where)
        raise ValueError(f"Could not build the {where} from {expr!r}: {exc}") from None


def _raise_undefined_transform(expr: str, data: pd.DataFrame, where: str) -> None:
    """A transformation that is undefined on some rows (``log(y)`` with y ≤ 0): name it and count.

    The data have no missing values here (those rows were already dropped), so the missing
    values come from the transformation itself. R would drop NaN rows silently (or stop on
    -Inf); we stop and say which expression, how many rows, and what to do.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # log(0) and log(-1) are what we report
        mm = model_matrix(_to_formulaic(expr), data, na_action="ignore")
    values = np.asarray(mm, dtype=float)
    bad = ~np.isfinite(values)
    cols = [str(c) for c, b in zip(mm.columns, bad.any(axis=0), strict=True) if b]
    rows = bad.any(axis=1)
    labels = ", ".join(map(str, data.index[rows][:5])) + (", ..." if rows.sum() > 5 else "")
    raise ValueError(
        f"In the {where}, {', '.join(cols) or expr} is not finite for {int(rows.sum())} of "
        f"{len(data)} rows (row labels {labels}): the transformation is undefined there (e.g. the "
        "log of a value <= 0). Remove or recode those rows before fitting, or change the "
        "transformation (e.g. log(y + c) with a stated c)."
    ) from None


def build_design(
    parsed: ParsedFormula,
    data: pd.DataFrame,
    *,
    require_random: bool,
    check_nobs: bool = True,
    complete: bool = False,
) -> DesignMatrices:
    """Validate ``data`` and build the arrays for ``parsed``.

    Rows with a missing value in any variable the model uses are dropped, as
    R's default ``na.action = na.omit`` does, and a warning says how many.
    The caller's DataFrame is never modified. ``complete=True`` says that the
    caller has already done this (``glmer``'s model frame holds only complete
    rows of the model's columns): ``data`` is then used as it is.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}.")
    if len(data) == 0:
        raise ValueError("data is empty: the model needs at least one row.")
    if require_random and not parsed.random:
        raise ValueError(
            f"The formula {parsed.formula!r} has no random-effect term such as "
            "'(1 | group)'; use mlmhelpers.lm() for a model without random effects."
        )
    if not require_random and parsed.random:
        raise ValueError(
            f"The formula {parsed.formula!r} has random-effect terms; use mlmhelpers.lmer()."
        )
    seen_terms: set[tuple[str, str, bool]] = set()
    for t in parsed.random:
        key = (re.sub(r"\s+", "", t.expr), re.sub(r"\s+", "", t.group), t.correlated)
        if key in seen_terms:
            raise ValueError(f"The random-effect term {t} appears twice in {parsed.formula!r}; "
                             "give each term once.")
        seen_terms.add(key)
    groups_used = sorted({c for t in parsed.random for _, cols in t.factors() for c in cols})

    if re.search(r"(?<![\w.])offset\s*\(", parsed.fixed):
        raise ValueError(
            f"offset() in {parsed.formula!r}: lmer() and lm() take no offset; glmer() does "
            "(e.g. offset(log(exposure)) in a Poisson model). For a linear model subtract the offset "
            "from the response instead, e.g. 'I(y - z) ~ x + (1 | g)'."
        )
    resp_vars = _required_variables(parsed.response)
    fixed_vars = _required_variables(parsed.fixed)
    rand_vars: set[str] = set()
    for t in parsed.random:
        rand_vars |= _required_variables(t.expr)
    _check_columns(data, resp_vars, "response")
    _check_columns(data, fixed_vars, "fixed effects")
    _check_columns(data, rand_vars, "random effects")
    _check_columns(data, set(groups_used), "grouping factor")

    used = sorted(resp_vars | fixed_vars | rand_vars | set(groups_used))
    frame = data if complete else data.loc[:, used]
    incomplete = np.zeros(len(frame), dtype=bool) if complete else frame.isna().any(axis=1).to_numpy()
    n_dropped = int(incomplete.sum())
    if n_dropped == len(frame):
        raise ValueError("Every row has a missing value in a model variable; nothing to fit.")
    if n_dropped:
        cols = [c for c in used if frame[c].isna().any()]
        warn(f"Dropped {n_dropped} of {len(frame)} rows with missing values "
             f"(in {', '.join(cols)}), as R's na.omit does.", RowsDroppedWarning)
        frame = frame.loc[~incomplete]

    # Response -------------------------------------------------------------
    if parsed.response in frame.columns:
        ycol = frame[parsed.response]
        if not pd.api.types.is_numeric_dtype(ycol) or pd.api.types.is_bool_dtype(ycol):
            raise TypeError(
                f"The response {parsed.response!r} must be numeric, got dtype {ycol.dtype}."
            )
        y = ycol.to_numpy(dtype=float)
    else:
        ymat = _matrix("0 + " + parsed.response, frame, "response")
        if ymat.shape[1] != 1:
            raise TypeError(f"The response {parsed.response!r} must be a single numeric column.")
        y = np.asarray(ymat, dtype=float).ravel()
    if not np.all(np.isfinite(y)):
        raise ValueError(
            f"The response {parsed.response!r} has {int((~np.isfinite(y)).sum())} "
            "infinite value(s); remove or recode them before fitting."
        )

    # Fixed effects --------------------------------------------------------
    xm = _matrix(parsed.fixed, frame, "fixed-effects design")
    X = np.asarray(xm, dtype=float)
    x_names = [r_column_name(c, "factor(" in parsed.fixed) for c in xm.columns]
    if not np.all(np.isfinite(X)):
        raise ValueError("The fixed-effects design matrix has infinite values.")
    if X.shape[1] == 0:
        raise ValueError(f"The formula {parsed.formula!r} has no fixed-effect columns.")
    X, x_names, dropped, x_qr = _drop_rank_deficient(X, x_names)

    if not parsed.random:
        return DesignMatrices(y=y, X=X, x_names=x_names, terms=[], n_dropped=n_dropped,
                              row_index=frame.index, x_spec=xm.model_spec, dropped_columns=dropped, x_qr=x_qr)
    terms = _random_terms(parsed, frame, len(y), check_nobs=check_nobs)
    return DesignMatrices(y=y, X=X, x_names=x_names, terms=terms, n_dropped=n_dropped,
                          row_index=frame.index, x_spec=xm.model_spec, dropped_columns=dropped, x_qr=x_qr)


def _factor_codes(frame: pd.DataFrame, cols: tuple[str, ...], name: str) -> tuple[np.ndarray, pd.Index]:
    """Level codes and labels of a grouping factor (an interaction ``a:b`` if several columns).

    Levels are sorted as R's ``factor()`` sorts them; an interaction's levels
    are ``"la:lb"`` in the order of R's ``a:b`` (first factor slowest), unused
    combinations dropped.
    """
    if len(cols) == 1:
        codes, levels = pd.factorize(frame[cols[0]], sort=True)
        return codes.astype(np.intp), pd.Index(levels, name=name)
    parts = [pd.factorize(frame[c], sort=True) for c in cols]
    combo = np.zeros(len(frame), dtype=np.int64)
    for codes, levels in parts:
        combo = combo * len(levels) + codes
    codes, uniq = pd.factorize(combo, sort=True)
    labels = []
    for v in uniq:
        pieces = []
        for _codes, levels_c in reversed(parts):
            pieces.append(str(levels_c[v % len(levels_c)]))
            v //= len(levels_c)
        labels.append(":".join(reversed(pieces)))
    return codes.astype(np.intp), pd.Index(labels, name=name)


def _random_terms(parsed: ParsedFormula, frame: pd.DataFrame, n: int, *,
                  check_nobs: bool = True) -> list[RandomEffectsTerm]:
    """One RandomEffectsTerm per grouping factor, with lme4's checks and lme4's order.

    ``check_nobs=False`` skips the two checks of levels and random effects
    against the number of observations, as ``glmer`` does (lme4's
    ``glmerControl`` ignores them: an observation-level random effect is a
    legitimate GLMM term).
    """
    factors: dict[str, tuple[np.ndarray, pd.Index, tuple[str, ...]]] = {}
    bars = []  # (factor name, expression, correlated, Z, names, spec) per bar after a/b expansion
    for term in parsed.random:
        if term.expr == "1":  # a random intercept, the commonest term: a column of ones, no formulaic
            zm, names, Zt = None, ["(Intercept)"], np.ones((len(frame), 1))
        else:
            zm = _matrix(term.expr, frame, f"random-effects design of {term}")
            names = [r_column_name(c, "factor(" in term.expr) for c in zm.columns]
            Zt = np.asarray(zm, dtype=float)
        if Zt.shape[1] == 0:
            raise ValueError(f"The random-effect term {term} has no columns.")
        if not np.all(np.isfinite(Zt)):
            raise ValueError(f"The random-effect term {term} has infinite values.")
        for name, cols in term.factors():
            if name not in factors:
                codes, levels = _factor_codes(frame, cols, name)
                factors[name] = (codes, levels, cols)
            bar = "|" if term.correlated else "||"
            label = f"{term.expr} {bar} {name}"
            bars.append((name, term.expr, term.correlated, Zt, names,
                         _INTERCEPT if term.expr == "1" else zm.model_spec, label))
    # lme4's checks (lFormula: check.nlev.gtr.1, check.nobs.vs.nlev, check.nobs.vs.nRE), with its messages.
    one = [nm for nm, (_, lv, _) in factors.items() if len(lv) < 2]
    if one:
        raise ValueError("grouping factors must have > 1 sampled level (problems: " + ", ".join(
            f"{nm!r} has a single level ({factors[nm][1][0]!r})" for nm in one)
            + "): a random effect needs at least two groups.")
    many = [nm for nm, (_, lv, _) in factors.items() if len(lv) >= n] if check_nobs else []
    if many:
        raise ValueError("number of levels of each grouping factor must be < number of observations "
                         f"(problems: {', '.join(f'{m} has {len(factors[m][1])} levels for {n} observations' for m in many)})")
    for name, _, correlated, Zt, _, _, label in bars:
        # lme4 splits (x || g) into one term per column before this check.
        nre = len(factors[name][1]) * (Zt.shape[1] if correlated else 1)
        if check_nobs and nre >= n:
            raise ValueError(
                f"number of observations (={n}) <= number of random effects (={nre}) for term ({label}); "
                "the random-effects parameters and the residual variance (or scale parameter) are "
                "probably unidentifiable")
    # lme4 (mkReTrms) orders the terms by decreasing number of levels when they are not already.
    nl = [len(factors[b[0]][1]) for b in bars]
    if any(b > a for a, b in zip(nl[:-1], nl[1:], strict=True)):
        order = list(np.argsort(nl, kind="stable"))[::-1]
        bars = [bars[i] for i in order]
    merged: dict[str, list] = {}
    for b in bars:
        merged.setdefault(b[0], []).append(b)
    terms = []
    for name, group in merged.items():
        codes, levels, cols = factors[name]
        z_cols, z_names, blocks, exprs, specs = [], [], [], [], []
        start = 0
        for _, expr, correlated, Zt, names, spec, _label in group:
            dup = set(names) & set(z_names)
            if dup:
                raise ValueError(
                    f"The random-effect column(s) {sorted(dup)} appear in more than one term "
                    f"for {name!r}; each column may vary by group only once.")
            z_cols.append(Zt)
            z_names.extend(names)
            exprs.append(expr)
            specs.append(spec)
            k = Zt.shape[1]
            blocks.extend([(start, start + k, True)] if correlated
                          else [(start + i, start + i + 1, False) for i in range(k)])
            start += k
        terms.append(RandomEffectsTerm(name=name, codes=codes, levels=levels, Z=np.hstack(z_cols),
                                       z_names=z_names, blocks=blocks, exprs=tuple(exprs),
                                       specs=tuple(specs), columns=cols))
    return terms


def _drop_rank_deficient(X: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str], list[str], tuple | None]:
    """Drop columns that are linear combinations of earlier ones, as lme4 does (one QR, R's rule)."""
    p = X.shape[1]
    if p == 0:
        return X, names, [], None
    keep, qr = independent_columns_qr(X)
    if len(keep) == p:
        return X, names, [], qr
    kept = set(keep.tolist())
    dropped = [names[j] for j in range(p) if j not in kept]
    warn(f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} "
         f"column(s): {', '.join(dropped)}", RankDeficiencyWarning)
    return X[:, keep], [names[j] for j in keep], dropped, None


class _InterceptSpec:
    """The model spec of a random intercept: a column of ones for any data (formulaic's name).

    Building ``(1 | g)``'s one column with formulaic costs about 1.5 ms a fit; this object
    stands in for formulaic's ``ModelSpec`` wherever a term's spec is used (``specs``,
    :func:`new_random_matrix`).
    """

    required_variables: frozenset = frozenset()

    def get_model_matrix(self, data: pd.DataFrame, na_action: str = "raise") -> pd.DataFrame:
        return pd.DataFrame({"Intercept": np.ones(len(data))}, index=data.index)


_INTERCEPT = _InterceptSpec()


def _new_matrix(spec, newdata: pd.DataFrame, what: str):
    """Apply a fitted model spec to new data, with errors that name the problem."""
    if not isinstance(newdata, pd.DataFrame):
        raise TypeError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}.")
    needed = set(spec.required_variables) if hasattr(spec, "required_variables") else set()
    missing = sorted(v for v in needed if v not in newdata.columns)
    if missing:
        raise ValueError(f"newdata lacks the column(s) {', '.join(map(repr, missing))} needed for the {what}.")
    for v in sorted(needed):
        if newdata[v].isna().any():
            raise ValueError(f"newdata's column {v!r} has missing values; predictions need complete rows.")
    with warnings.catch_warnings():
        # formulaic only warns about factor levels absent from the fit and codes them as
        # the reference level: that would be a silently wrong prediction, so it is an error.
        warnings.simplefilter("error", DataMismatchWarning)
        try:
            return spec.get_model_matrix(newdata, na_action="raise")
        except DataMismatchWarning as exc:
            found = re.search(r"\{(.*)\}", str(exc))
            levels = re.sub(r"np\.\w+\((.*?)\)", r"\1", found.group(1)) if found else str(exc)
            raise ValueError(
                f"newdata has factor levels the model was not fitted with: {levels}. A factor's "
                "coefficients exist only for the levels in the data it was fitted to."
            ) from None
        except (FormulaicError, ValueError, NameError) as exc:
            raise ValueError(f"Could not build the {what} for newdata: {exc}") from None


def new_fixed_matrix(design: DesignMatrices, newdata: pd.DataFrame) -> np.ndarray:
    """Fixed-effects matrix of ``newdata`` built with the fitted model's spec."""
    mm = _new_matrix(design.x_spec, newdata, "fixed effects")
    names = [r_column_name(c, True) for c in mm.columns]
    names_plain = [r_column_name(c, False) for c in mm.columns]
    out = np.empty((len(newdata), len(design.x_names)))
    for k, name in enumerate(design.x_names):
        col = names.index(name) if name in names else names_plain.index(name)
        out[:, k] = np.asarray(mm.iloc[:, col], dtype=float)
    return out


def new_random_matrix(design: DesignMatrices | RandomEffectsTerm, newdata: pd.DataFrame) -> np.ndarray:
    """Random-effects columns of ``newdata`` for one term (columns as in the fit)."""
    term = design._only_term("new_random_matrix") if isinstance(design, DesignMatrices) else design
    parts = [np.asarray(_new_matrix(spec, newdata, "random effects"), dtype=float) for spec in term.specs]
    return np.hstack(parts)


def new_factor_codes(term: RandomEffectsTerm, newdata: pd.DataFrame) -> np.ndarray:
    """Level codes of ``newdata``'s rows for ``term`` (−1 for a level absent from the fit)."""
    missing = [c for c in term.columns if c not in newdata.columns]
    if missing:
        raise ValueError(f"newdata has no column(s) {', '.join(map(repr, missing))}, needed for the random "
                         f"effects of {term.name!r}; pass re_form='~0' for population-level predictions.")
    for c in term.columns:
        if newdata[c].isna().any():
            raise ValueError(f"newdata's grouping column {c!r} has missing values.")
    if len(term.columns) == 1:
        return term.levels.get_indexer(newdata[term.columns[0]])
    labels = newdata[list(term.columns)].astype(str).agg(":".join, axis=1)
    return term.levels.get_indexer(labels)
