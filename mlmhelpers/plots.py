"""The course's figures as a small Matplotlib API.

Every function draws on an existing Axes (``ax=`` / ``axes=``) or creates a
figure sized for a book column, returns what it drew on, never calls
``plt.show()`` and never changes ``matplotlib.rcParams``. Colours are shared
by all figures: :data:`GROUP_PALETTE` (Okabe–Ito) for groups and
:data:`POOLING_COLORS` for the three pooling strategies, so "partial pooling"
has the same colour in every chapter.

Axis labels default to column names; pass ``labels={"column": "Nice label"}``
(or ``xlabel=`` where offered) to override them, e.g.
``labels={"violent_arrest_per1000": "Violent arrests per 1,000", "stusps": "State"}``;
one such mapping can be passed to every function of a chapter.

Bad input fails early with a message that says what to pass instead: a
``TypeError`` naming the expected model type, a ``ValueError`` listing the
available columns, group levels or random-effect terms.

The figures of the lectures: ``plot_distributions`` (arrests and poverty),
``plot_fit_line`` (complete pooling), ``plot_group_boxplots`` (clustering by
state), ``plot_group_lines`` (the faculty models and the state fixed
effects), ``plot_caterpillar`` (group estimates ± 2 SE),
``plot_intercept_distributions`` and ``plot_shrinkage`` (fixed vs random
intercepts), ``plot_pooling_lines`` (the three kinds of pooling, group by
group), ``plot_estimates_vs_truth`` (the faculty simulation) and
``plot_criterion_curve`` (what ``lmer`` optimises).

Beyond the lectures: checking a model (``plot_residuals``, ``plot_qq`` with a
reference band from ``qq_table``, ``plot_ranef_qq`` per grouping factor,
``plot_sim_stat`` for a statistic of simulated responses against the data's)
and its uncertainty (``plot_profile`` for a profile-likelihood ζ curve,
``plot_bootstrap`` for a bootstrap distribution).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.ticker import LogLocator, NullFormatter, StrMethodFormatter

from .lm import LmResult
from .results import LmerResult
from .tidy import shrinkage_table

__all__ = [
    "GROUP_PALETTE", "POOLING_COLORS", "POOLING_LABELS",
    "plot_group_lines", "plot_fit_line", "plot_distributions", "plot_group_boxplots",
    "plot_caterpillar", "plot_intervals", "plot_intercept_distributions", "plot_shrinkage", "plot_pooling_lines",
    "plot_estimates_vs_truth", "plot_criterion_curve",
    # model checking
    "qq_table", "plot_residuals", "plot_qq", "plot_ranef_qq", "plot_sim_stat",
    # uncertainty
    "plot_profile", "plot_bootstrap",
]

# ----------------------------------------------------------------------------- constants

#: Okabe & Ito (2008) colour-blind-safe palette, ordered for group lines
#: (orange, sky blue, bluish green, blue, vermillion, reddish purple, yellow, black).
GROUP_PALETTE: list[str] = [
    "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#F0E442", "#000000",
]

#: One colour per pooling strategy, used by every figure (Okabe–Ito colours).
POOLING_COLORS: dict[str, str] = {
    "complete": "#000000",  # black
    "none": "#D55E00",  # vermillion
    "partial": "#0072B2",  # blue
}

#: Legend labels of the three pooling strategies.
POOLING_LABELS: dict[str, str] = {
    "complete": "Complete pooling",
    "none": "No pooling (fixed effects)",
    "partial": "Partial pooling (multilevel)",
}

_SINGLE_FIGSIZE = (7.0, 4.0)
_MAX_LEGEND_GROUPS = 8  # more groups than this: grey points, faint lines, no legend
_MANY_POINTS = 500  # more points than this: smaller, more transparent markers
_POINT_GREY = "#9A9A9A"
_LIGHT_GREY = "#BDBDBD"
_DARK_GREY = "#4D4D4D"
_LINE_POINTS = 50  # points along each fitted curve
_FACTOR_TERM = re.compile(r"(?<![\w.])(?:factor|C)\(\s*([A-Za-z_][\w.]*)\s*[,)]")

# ---------------------------------------------------------------------- validation helpers


def _check_model(model: Any, types: type | tuple[type, ...], fname: str, arg: str = "model") -> None:
    types = types if isinstance(types, tuple) else (types,)
    if not isinstance(model, types):
        expected = " or ".join(_model_kind(t) for t in types)
        raise TypeError(f"{fname}() needs {arg} to be {expected}, got {type(model).__name__}.")


def _model_kind(t: type) -> str:
    return {LmerResult: "an LmerResult (a model fitted by lmer())",
            LmResult: "an LmResult (a model fitted by lm())"}.get(t, t.__name__)


def _check_columns(data: Any, columns: Sequence[str], fname: str, numeric: Sequence[str] = ()) -> None:
    """``data`` is a DataFrame with ``columns``; those in ``numeric`` hold numbers."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"{fname}() needs data to be a pandas DataFrame, got {type(data).__name__}.")
    missing = [c for c in dict.fromkeys([*columns, *numeric]) if c not in data.columns]
    if missing:
        raise ValueError(f"{fname}(): column(s) {', '.join(map(repr, missing))} not in data; "
                         f"available columns: {', '.join(map(str, data.columns))}.")
    for c in numeric:
        if not pd.api.types.is_numeric_dtype(data[c]) or pd.api.types.is_bool_dtype(data[c]):
            raise ValueError(f"{fname}(): column {c!r} must be numeric, got dtype {data[c].dtype}.")


def _resolve_groups(requested: Sequence[Any] | None, levels: Sequence[Any], group: str) -> list[Any]:
    """The requested levels (matched by value or by their string), in the order given."""
    levels = list(levels)
    if requested is None:
        return levels
    if isinstance(requested, (str, bytes)) or not isinstance(requested, Sequence | pd.Index | np.ndarray):
        requested = [requested]
    by_str = {str(lv): lv for lv in levels}
    out, unknown = [], []
    for r in requested:
        if r in levels:
            out.append(levels[levels.index(r)])
        elif str(r) in by_str:
            out.append(by_str[str(r)])
        else:
            unknown.append(r)
    if unknown:
        raise ValueError(f"Unknown level(s) {', '.join(map(repr, unknown))} of {group!r}; "
                         f"valid levels: {', '.join(map(str, levels))}.")
    if not out:
        raise ValueError(f"groups is empty; choose levels of {group!r} from {', '.join(map(str, levels))}.")
    return out


def _check_labels(labels: Mapping[str, str] | None) -> Mapping[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise TypeError(f"labels must be a mapping such as {{'column': 'Axis label'}}, got {type(labels).__name__}.")
    return labels


def _label(name: str, labels: Mapping[str, str]) -> str:
    return labels.get(name, name)


def _check_k(k: float) -> float:
    if isinstance(k, bool) or not isinstance(k, (int, float, np.number)) or not (np.isfinite(k) and k > 0):
        raise ValueError(f"k must be a positive number of standard errors, got {k!r}.")
    return float(k)


# --------------------------------------------------------------------------- axes helpers


def _single_axes(ax: Axes | None, figsize: tuple[float, float] = _SINGLE_FIGSIZE) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
        return ax
    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes, got {type(ax).__name__}.")
    return ax


def _axes_array(axes: Any, n: int, *, ncols: int, figsize: tuple[float, float], **subplot_kw: Any) -> np.ndarray:
    """``n`` Axes: the first ``n`` of ``axes`` or a new grid with ``ncols`` columns (extra cells removed)."""
    if axes is None:
        nrows = int(np.ceil(n / ncols))
        _, grid = plt.subplots(nrows, ncols, figsize=figsize, layout="constrained", squeeze=False, **subplot_kw)
        flat = grid.ravel()
        for extra in flat[n:]:
            extra.remove()
        return flat[:n]
    flat = np.asarray(axes, dtype=object).ravel()
    if not all(isinstance(a, Axes) for a in flat):
        raise TypeError("axes must be a sequence (or array) of matplotlib Axes.")
    if len(flat) < n:
        raise ValueError(f"This figure needs {n} Axes, got {len(flat)}.")
    return flat[:n]


def _style_axes(ax: Axes, grid: Literal["x", "y", "both"] | None = "both") -> None:
    """Light, book-friendly look set on this Axes only (rcParams stay untouched)."""
    ax.spines[["top", "right"]].set_visible(False)
    if grid is not None:
        ax.grid(True, axis=grid, color="#E5E5E5", linewidth=0.8)
        ax.set_axisbelow(True)


def _finish(ax: Axes, *, xlabel: str, ylabel: str, title: str | None = None,
            grid: Literal["x", "y", "both"] | None = "both") -> None:
    """Style, label and (if given) title one Axes; large numbers get thousands separators."""
    _style_axes(ax, grid)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    for axis, lims in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        if axis.get_scale() == "linear" and max(abs(lims[0]), abs(lims[1])) >= 1e4:
            axis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))


def _number(v: float) -> str:
    """A short, readable number for a legend: 3 significant digits, or whole with separators."""
    return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.3g}"


def _group_colors(n: int) -> list[str]:
    return [GROUP_PALETTE[i % len(GROUP_PALETTE)] for i in range(n)]


def _point_style(n: int) -> dict[str, Any]:
    """Marker size and transparency that keep ``n`` points readable."""
    if n > 4 * _MANY_POINTS:
        return {"s": 7, "alpha": 0.35, "linewidths": 0}
    if n > _MANY_POINTS:
        return {"s": 10, "alpha": 0.5, "linewidths": 0}
    return {"s": 22, "alpha": 0.75, "linewidths": 0}


def _ytick_fontsize(n: int) -> float:
    return 10 if n <= 20 else 8 if n <= 35 else 7


def _tall_figsize(n: int, width: float = 7.0) -> tuple[float, float]:
    """Height that keeps ``n`` category labels on the y axis legible."""
    return (width, max(_SINGLE_FIGSIZE[1], 0.15 * n + 1.1))


# -------------------------------------------------------------------------- model helpers


def _factor_columns(model: LmResult | LmerResult) -> list[str]:
    return list(dict.fromkeys(_FACTOR_TERM.findall(model.parsed.fixed)))


def _group_column(model: LmResult | LmerResult, group: str | None, fname: str, *,
                  allow_no_factor: bool = False) -> str:
    """The grouping column of an lmer fit, or of an lm fit's ``factor(g)``/``C(g)`` term.

    With ``allow_no_factor``, an lm without any factor term may be paired with ``group``:
    it ignores the groups, so every group gets the same line.
    """
    if isinstance(model, LmerResult):
        g = model.design.group_name
        if group is not None and group != g:
            raise ValueError(f"{fname}(): the model's grouping factor is {g!r}, not {group!r}.")
        return g
    factors = _factor_columns(model)
    if group is not None:
        if not factors and allow_no_factor:
            # A model that ignores the groups: every group gets the same line, drawn over
            # its own points (the "before" picture of a multilevel model).
            return group
        if group not in factors:
            raise ValueError(f"{fname}(): the lm formula {model.formula!r} has no factor({group}) term; "
                             f"factor terms: {factors or 'none'}.")
        return group
    if len(factors) == 1:
        return factors[0]
    if not factors:
        raise ValueError(f"{fname}(): the lm formula {model.formula!r} has no factor(g) or C(g) term, so "
                         "it has no group lines; use plot_fit_line() for a single line.")
    raise ValueError(f"{fname}(): the lm formula has several factor terms {factors}; pass group= one of them.")


def _model_levels(model: LmResult | LmerResult, data: pd.DataFrame, group: str) -> list[Any]:
    if isinstance(model, LmerResult):
        return list(model.design.levels)
    return sorted(pd.unique(data[group].dropna()), key=str)


def _response(model: LmResult | LmerResult, data: pd.DataFrame, fname: str) -> str:
    y = model.parsed.response
    if y not in data.columns:
        raise ValueError(f"{fname}(): the model's response {y!r} is not a column of data "
                         f"(available: {', '.join(map(str, data.columns))}); plot a response that is a column.")
    return y


def _typical_values(data: pd.DataFrame, skip: set[str], categorical: set[str]) -> dict[str, Any]:
    """Each other column at its mean (numeric) or most common value (text, or used as a factor)."""
    out: dict[str, Any] = {}
    for col in data.columns:
        if col in skip:
            continue
        s = data[col].dropna()
        if s.empty:
            continue
        numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
        out[col] = s.mean() if numeric and col not in categorical else s.mode().iloc[0]
    return out


def _predict_curves(model: LmResult | LmerResult, data: pd.DataFrame, x: str,
                    spans: Sequence[tuple[Any, float, float]], *, group: str | None = None,
                    population: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """The model's predictions along ``x`` for several curves in one call.

    ``spans`` holds ``(level, x_min, x_max)`` per curve; ``level`` goes in
    column ``group`` (ignored when ``group`` is None). Other predictors are
    held at their typical values (:func:`_typical_values`).
    """
    grids = [np.linspace(lo, hi, _LINE_POINTS) for _, lo, hi in spans]
    cols = _typical_values(data, {x} | ({group} if group else set()), set(_factor_columns(model)))
    if group is not None:
        cols[group] = [level for level, _, _ in spans for _ in range(_LINE_POINTS)]
    cols[x] = np.concatenate(grids)
    frame = pd.DataFrame(cols, index=pd.RangeIndex(len(cols[x])))
    if isinstance(model, LmerResult):
        pred = model.predict(frame, re_form="~0" if population else None).to_numpy()
    else:
        pred = model.predict(frame).to_numpy()
    return [(grid, pred[i * _LINE_POINTS:(i + 1) * _LINE_POINTS]) for i, grid in enumerate(grids)]


def _predict_line(model: LmResult | LmerResult, data: pd.DataFrame, x: str, xs: pd.Series,
                  *, population: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One population-level / pooled line over the range of ``xs``."""
    return _predict_curves(model, data, x, [(None, np.nanmin(xs), np.nanmax(xs))], population=population)[0]


def _finite_xy(data: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    keep = np.isfinite(data[x].to_numpy(dtype=float)) & np.isfinite(data[y].to_numpy(dtype=float))
    return data.loc[keep]


def _scatter(ax: Axes, xs: Any, ys: Any, n_total: int, **kw: Any):
    style = _point_style(n_total)
    style.update(kw)
    return ax.scatter(xs, ys, **style)


def _intercept_pair(no_pooling: Any, multilevel: Any, fname: str) -> pd.DataFrame:
    """Validate a no-pooling lm / random-intercept lmer pair and return its shrinkage table."""
    _check_model(no_pooling, LmResult, fname, "no_pooling")
    _check_model(multilevel, LmerResult, fname, "multilevel")
    if list(multilevel.ranef.columns) != ["(Intercept)"]:
        raise ValueError(f"{fname}() needs a random-intercept model such as y ~ x + (1 | g); "
                         f"this one has random terms {list(multilevel.ranef.columns)}.")
    _group_column(no_pooling, multilevel.design.group_name, fname)
    return shrinkage_table(no_pooling, multilevel)


def _intercept_sd(multilevel: LmerResult) -> float:
    vc = multilevel.varcorr
    row = vc[(vc.var1 == "(Intercept)") & vc.var2.isna()]
    return float(row.sdcor.iloc[0])


# ------------------------------------------------------------------------ public functions


def plot_group_lines(model: LmerResult | LmResult, data: pd.DataFrame, x: str, *,
                     pooled: LmResult | None = None, groups: Sequence[Any] | None = None,
                     ax: Axes | None = None, group: str | None = None,
                     labels: Mapping[str, str] | None = None, title: str | None = None) -> Axes:
    """Scatter the data by group and draw one fitted line per group.

    Each group's line spans that group's range of ``x``; other predictors of
    the model are held at their mean (numeric) or most common value.

    Parameters
    ----------
    model : LmerResult or LmResult
        An ``lmer`` fit (its grouping factor is used) or an ``lm`` fit with a
        ``factor(g)``/``C(g)`` term (the no-pooling / fixed-effects model).
    data : DataFrame
        The data to scatter; must contain ``x``, the response and the group.
    x : str
        The predictor on the x axis.
    pooled : LmResult, optional
        A complete-pooling fit drawn as a dashed line in
        ``POOLING_COLORS["complete"]`` over the range of the plotted data.
    groups : sequence, optional
        Levels to draw (default all); only their rows are scattered.
    ax : Axes, optional
        Axes to draw on; a new 7×4 in figure if omitted.
    group : str, optional
        The grouping column of an ``lm`` fit; inferred when the formula has a
        single ``factor()`` term. For an ``lm`` without any factor (a model
        that ignores the groups) it colours the points by group and draws the
        model's one line over each group's range.
    labels : mapping, optional
        Axis labels by column name, e.g. ``{"salary": "Salary ($)"}``.
    title : str, optional

    Returns
    -------
    Axes

    Notes
    -----
    With up to 8 groups points and lines share the group's colour and a
    legend names the groups. With more, points are light grey and the lines
    cycle through :data:`GROUP_PALETTE` at low alpha, without a legend.

    Examples
    --------
    >>> import mlmhelpers as mh
    >>> from mlmhelpers.plots import plot_group_lines
    >>> f = mh.load_faculty()
    >>> m3 = mh.lmer("salary ~ experience + (1 + experience | department)", f)
    >>> ax = plot_group_lines(m3, f, "experience")
    """
    fname = "plot_group_lines"
    _check_model(model, (LmerResult, LmResult), fname)
    if pooled is not None:
        _check_model(pooled, LmResult, fname, "pooled")
    g = _group_column(model, group, fname, allow_no_factor=True)
    _check_columns(data, [g], fname, numeric=[x])
    y = _response(model, data, fname)
    labels = _check_labels(labels)
    chosen = _resolve_groups(groups, _model_levels(model, data, g), g)
    ax = _single_axes(ax)

    rows = _finite_xy(data, x, y)
    rows = rows.loc[rows[g].isin(chosen)]
    if rows.empty:
        raise ValueError(f"{fname}(): data has no rows with finite {x!r} and {y!r} in the chosen groups.")
    few = len(chosen) <= _MAX_LEGEND_GROUPS
    colors = _group_colors(len(chosen))
    if not few:
        _scatter(ax, rows[x], rows[y], len(rows), color=_LIGHT_GREY, gid="points")
    by_group = {level: rows.loc[rows[g] == level] for level in chosen}
    drawn = [(level, color) for level, color in zip(chosen, colors, strict=True) if len(by_group[level])]
    spans = [(level, by_group[level][x].min(), by_group[level][x].max()) for level, _ in drawn]
    curves = _predict_curves(model, data, x, spans, group=g)
    handles = []
    for (level, color), (gx, gy) in zip(drawn, curves, strict=True):
        if few:
            sub = by_group[level]
            _scatter(ax, sub[x], sub[y], len(rows), color=color, gid="points")
        ax.plot(gx, gy, color=color, lw=2 if few else 1, alpha=0.95 if few else 0.6,
                label=str(level), gid="group-line")
        handles.append(Line2D([], [], color=color, lw=2, marker="o", ms=5, label=str(level)))
    pooled_handles = []
    if pooled is not None:
        px, py = _predict_line(pooled, data, x, rows[x])
        pooled_handles += ax.plot(px, py, color=POOLING_COLORS["complete"], ls="--", lw=2,
                                  label=POOLING_LABELS["complete"], gid="pooled-line")
    if few:
        ax.legend(handles=handles + pooled_handles, title=_label(g, labels), loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), frameon=False, borderaxespad=0)
    elif pooled_handles:
        ax.legend(handles=pooled_handles, loc="upper left", frameon=False)
    _finish(ax, xlabel=_label(x, labels), ylabel=_label(y, labels), title=title)
    return ax


def plot_fit_line(model: LmResult | LmerResult, data: pd.DataFrame, x: str, *, ax: Axes | None = None,
                  labels: Mapping[str, str] | None = None, title: str | None = None) -> Axes:
    """Scatter the data with a single fitted line (the complete-pooling picture).

    Parameters
    ----------
    model : LmResult or LmerResult
        An ``lm`` fit without group terms, drawn in
        ``POOLING_COLORS["complete"]``; or an ``lmer`` fit, whose
        population-level line (random effects at zero) is drawn in
        ``POOLING_COLORS["partial"]``.
    data : DataFrame
    x : str
        The predictor on the x axis; other predictors are held at their mean.
    ax : Axes, optional
    labels : mapping, optional
        Axis labels by column name.
    title : str, optional

    Returns
    -------
    Axes

    Examples
    --------
    >>> import mlmhelpers as mh
    >>> from mlmhelpers.plots import plot_fit_line
    >>> d = mh.load_arrests()
    >>> pooled = mh.lm("violent_arrest_per1000 ~ pop_pct_pov", d)
    >>> ax = plot_fit_line(pooled, d, "pop_pct_pov")
    """
    fname = "plot_fit_line"
    _check_model(model, (LmResult, LmerResult), fname)
    if isinstance(model, LmResult) and _factor_columns(model):
        raise ValueError(f"{fname}(): the lm formula {model.formula!r} has group terms "
                         f"{_factor_columns(model)}; use plot_group_lines() to draw one line per group.")
    _check_columns(data, [], fname, numeric=[x])
    y = _response(model, data, fname)
    labels = _check_labels(labels)
    ax = _single_axes(ax)
    rows = _finite_xy(data, x, y)
    _scatter(ax, rows[x], rows[y], len(rows), color=_POINT_GREY, gid="points")
    kind = "partial" if isinstance(model, LmerResult) else "complete"
    gx, gy = _predict_line(model, data, x, rows[x], population=True)
    label = "Population average (multilevel)" if kind == "partial" else POOLING_LABELS["complete"]
    ax.plot(gx, gy, color=POOLING_COLORS[kind], lw=2.2, label=label, gid="fit-line")
    ax.legend(loc="upper left", frameon=False)
    _finish(ax, xlabel=_label(x, labels), ylabel=_label(y, labels), title=title)
    return ax


def plot_distributions(data: pd.DataFrame, y: str, x: str, *, axes: Any = None,
                       labels: Mapping[str, str] | None = None, bins: int = 30) -> np.ndarray:
    """Histogram of ``y``, histogram of ``x`` and the scatter of ``y`` against ``x``.

    Parameters
    ----------
    data : DataFrame
    y, x : str
        Outcome and predictor columns.
    axes : sequence of 3 Axes, optional
        Default: a new 1×3 figure.
    labels : mapping, optional
        Axis labels by column name.
    bins : int, default 30

    Returns
    -------
    numpy.ndarray of 3 Axes

    Examples
    --------
    >>> import mlmhelpers as mh
    >>> from mlmhelpers.plots import plot_distributions
    >>> axes = plot_distributions(mh.load_arrests(), "violent_arrest_per1000", "pop_pct_pov")
    """
    fname = "plot_distributions"
    _check_columns(data, [], fname, numeric=[y, x])
    labels = _check_labels(labels)
    axs = _axes_array(axes, 3, ncols=3, figsize=(8.5, 3.0))
    rows = _finite_xy(data, x, y)
    for ax, col in zip(axs[:2], (y, x), strict=True):
        ax.hist(rows[col], bins=bins, color=_POINT_GREY, edgecolor="white", linewidth=0.5)
        _finish(ax, xlabel=_label(col, labels), ylabel="Count", grid="y")
    _scatter(axs[2], rows[x], rows[y], len(rows), color=_DARK_GREY, gid="points")
    _finish(axs[2], xlabel=_label(x, labels), ylabel=_label(y, labels))
    return axs


def plot_group_boxplots(data: pd.DataFrame, y: str, group: str, *, ax: Axes | None = None,
                        labels: Mapping[str, str] | None = None, title: str | None = None) -> Axes:
    """Boxplots of ``y`` by group, ordered by the group median (clustering by group).

    Parameters
    ----------
    data : DataFrame
    y : str
        Outcome column.
    group : str
        Grouping column; groups go on the x axis, lowest median first.
    ax : Axes, optional
    labels : mapping, optional
        Axis labels by column name.
    title : str, optional

    Returns
    -------
    Axes

    Examples
    --------
    >>> import mlmhelpers as mh
    >>> from mlmhelpers.plots import plot_group_boxplots
    >>> ax = plot_group_boxplots(mh.load_arrests(), "violent_arrest_per1000", "stusps")
    """
    fname = "plot_group_boxplots"
    _check_columns(data, [group], fname, numeric=[y])
    labels = _check_labels(labels)
    rows = data.loc[np.isfinite(data[y].to_numpy(dtype=float)) & data[group].notna(), [group, y]]
    if rows.empty:
        raise ValueError(f"{fname}(): no rows with a finite {y!r} and a {group!r} value.")
    medians = rows.groupby(group, sort=True)[y].median().sort_values(kind="stable")
    values = [rows.loc[rows[group] == lv, y].to_numpy() for lv in medians.index]
    ax = _single_axes(ax)
    n = len(values)
    edge = {"color": _DARK_GREY, "linewidth": 0.9}
    parts = ax.boxplot(
        values, positions=np.arange(n), widths=0.65, patch_artist=True,
        boxprops={"facecolor": "#E6E6E6", "edgecolor": _DARK_GREY, "linewidth": 0.9},
        medianprops={"color": POOLING_COLORS["complete"], "linewidth": 1.6}, whiskerprops=edge, capprops=edge,
        flierprops={"marker": "o", "markersize": 2.5, "markerfacecolor": _DARK_GREY, "markeredgecolor": "none",
                    "alpha": 0.5},
    )
    for box, median in zip(parts["boxes"], parts["medians"], strict=True):
        box.set_gid("box")
        median.set_gid("median")
    ax.set_xticks(np.arange(n), [str(lv) for lv in medians.index])
    if n > 20:
        ax.tick_params(axis="x", labelrotation=90, labelsize=_ytick_fontsize(n))
    ax.set_xlim(-0.7, n - 0.3)
    _finish(ax, xlabel=_label(group, labels), ylabel=_label(y, labels), title=title, grid="y")
    return ax


def _caterpillar_frame(estimates: Any, term: str, fname: str,
                       group: str | None = None) -> tuple[pd.DataFrame, str, float | None]:
    """Estimates and SEs by group, the group name and a reference value, from a model or a table."""
    if isinstance(estimates, LmerResult):
        factors = [t.name for t in estimates.terms]
        if group is None:
            if len(factors) > 1:
                raise ValueError(f"{fname}(): this model has {len(factors)} grouping factors; choose one with "
                                 f"group=, one of {', '.join(map(repr, factors))}.")
            group = factors[0]
        elif group not in factors:
            raise ValueError(f"{fname}(): {group!r} is not a grouping factor of the model; "
                             f"valid factors: {', '.join(map(repr, factors))}.")
        from .inference import coef, se_ranef

        cf, se = coef(estimates, group), se_ranef(estimates, group)
        terms = list(se.columns)
        if term not in terms:
            raise ValueError(f"{fname}(): {term!r} is not a random-effect term of the model; "
                             f"valid terms: {', '.join(terms)}.")
        frame = pd.DataFrame({"estimate": cf[term], "std_error": se[term]})
        ref = float(estimates.fixef[term]) if term in estimates.fixef.index else 0.0
        return frame, group, ref
    if isinstance(estimates, pd.DataFrame):
        missing = [c for c in ("estimate", "std_error") if c not in estimates.columns]
        if missing:
            raise ValueError(f"{fname}(): the estimates table lacks column(s) {missing}; it needs 'estimate' and "
                             f"'std_error' (e.g. group_intercepts() or coef_intervals()); it has "
                             f"{list(estimates.columns)}.")
        if estimates.empty:
            raise ValueError(f"{fname}(): the estimates table is empty.")
        return estimates[["estimate", "std_error"]], estimates.index.name or "Group", None
    raise TypeError(f"{fname}() needs estimates to be an LmerResult (a model fitted by lmer()) or a DataFrame "
                    f"with columns 'estimate' and 'std_error', got {type(estimates).__name__}.")


def _draw_point_ranges(ax: Axes, names: pd.Index, est: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                       *, color: str, ref: float | None) -> None:
    """One row per name: a dot at ``est`` and a line from ``lower`` to ``upper``."""
    n = len(names)
    pos = np.arange(n)
    if ref is not None:
        ax.axvline(ref, color="#7F7F7F", ls="--", lw=1, gid="reference", zorder=1)
    ax.hlines(pos, lower, upper, color=color, lw=1.4, alpha=0.8, gid="intervals")
    ax.plot(est, pos, "o", color=color, ms=4.5, gid="estimates")
    ax.set_yticks(pos, [str(lv) for lv in names])
    ax.tick_params(axis="y", labelsize=_ytick_fontsize(n), length=0)
    ax.set_ylim(-0.8, n - 0.2)


def plot_intervals(table: pd.DataFrame, *, estimate: str = "fit", lower: str = "lower", upper: str = "upper",
                   sort: bool = False, ax: Axes | None = None, xlabel: str | None = None,
                   ylabel: str | None = None, color: str | None = None, ref: float | None = None,
                   title: str | None = None) -> Axes:
    """Point estimates with (possibly asymmetric) intervals, one row per table row.

    Made for :func:`mlmhelpers.predict_interval` output, whose simulated
    intervals need not be symmetric; any table with an estimate column and
    lower/upper bounds works.

    Parameters
    ----------
    table : DataFrame
        One row per interval; the index labels the rows (top row first).
    estimate, lower, upper : str
        Column names; defaults match ``predict_interval`` (``fit``, ``lower``, ``upper``).
    sort : bool, default False
        Order rows by the estimate (largest at the top) instead of table order.
    ax : Axes, optional
    xlabel, ylabel, title : str, optional
    color : str, optional
        Default ``POOLING_COLORS["partial"]``.
    ref : float, optional
        Position of a dashed reference line.

    Returns
    -------
    Axes

    Examples
    --------
    >>> import pandas as pd
    >>> import mlmhelpers as mh
    >>> from mlmhelpers.plots import plot_intervals
    >>> m = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", mh.load_arrests())
    >>> new = pd.DataFrame({"pop_pct_pov": 15.0, "stusps": ["TX", "DC", "new state"]},
    ...                    index=["TX", "DC", "new state"])
    >>> ax = plot_intervals(mh.predict_interval(m, new, allow_new_levels=True))
    """
    fname = "plot_intervals"
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{fname}() needs a DataFrame, got {type(table).__name__}.")
    _check_columns(table, [estimate, lower, upper], fname, numeric=[estimate, lower, upper])
    if table.empty:
        raise ValueError(f"{fname}(): the table is empty.")
    frame = table.sort_values(estimate, kind="stable") if sort else table.iloc[::-1]
    est, lo, hi = (frame[c].to_numpy(dtype=float) for c in (estimate, lower, upper))
    if np.any(lo > est) or np.any(hi < est):
        raise ValueError(f"{fname}(): every row needs {lower} <= {estimate} <= {upper}.")
    ax = _single_axes(ax, _tall_figsize(len(frame)) if len(frame) > 12 else _SINGLE_FIGSIZE)
    _draw_point_ranges(ax, frame.index, est, lo, hi, color=color or POOLING_COLORS["partial"], ref=ref)
    _finish(ax, xlabel=xlabel or estimate, ylabel=ylabel or (table.index.name or ""), title=title, grid="x")
    return ax


def plot_caterpillar(estimates: LmerResult | pd.DataFrame, *, term: str = "(Intercept)", k: float = 2.0,
                     ax: Axes | None = None, xlabel: str | None = None, color: str | None = None,
                     ref: float | None = None, labels: Mapping[str, str] | None = None,
                     title: str | None = None, group: str | None = None) -> Axes:
    """Point-range ("caterpillar") plot of group estimates ± ``k`` standard errors.

    Groups are on the y axis ordered by their estimate, the largest at the
    top.

    Parameters
    ----------
    estimates : LmerResult or DataFrame
        An ``lmer`` fit, giving ``coef[term] ± k * se_ranef[term]`` (arm's
        ``se.ranef``); or a table with columns ``estimate`` and ``std_error``
        indexed by group, e.g. ``group_intercepts(fe, "stusps")`` or
        ``coef_intervals(m)``.
    term : str, default "(Intercept)"
        The random-effect term to plot (models only).
    k : float, default 2
        Half-width of the intervals in standard errors.
    ax : Axes, optional
        Default: a new figure tall enough for one legible label per group.
    xlabel : str, optional
    color : str, optional
        Default ``POOLING_COLORS["partial"]`` for models, dark grey for tables.
    ref : float, optional
        Position of a dashed reference line; default the fixed effect of
        ``term`` for models, none for tables.
    labels : mapping, optional
        Label of the group axis by column name, e.g. ``{"stusps": "State"}``.
    title : str, optional
    group : str, optional
        The grouping factor to draw (models with several factors: one plot
        per factor, as lme4's ``dotplot(ranef(m))`` draws one panel per
        factor); not needed with one factor.

    Returns
    -------
    Axes

    Examples
    --------
    >>> import mlmhelpers as mh
    >>> from mlmhelpers.plots import plot_caterpillar
    >>> m = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", mh.load_arrests())
    >>> ax = plot_caterpillar(m)
    >>> d = mh.load_arrests().assign(county=lambda d: d.stusps + "-" + d.fips.astype(str))
    >>> m2 = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps/county)", d)
    >>> ax = plot_caterpillar(m2, group="stusps")
    """
    fname = "plot_caterpillar"
    frame, gname, default_ref = _caterpillar_frame(estimates, term, fname, group)
    k = _check_k(k)
    labels = _check_labels(labels)
    frame = frame.sort_values("estimate", kind="stable")
    n = len(frame)
    ax = _single_axes(ax, _tall_figsize(n))
    if color is None:
        color = POOLING_COLORS["partial"] if isinstance(estimates, LmerResult) else "#333333"
    ref = default_ref if ref is None else ref
    est, se = frame["estimate"].to_numpy(dtype=float), frame["std_error"].to_numpy(dtype=float)
    _draw_point_ranges(ax, frame.index, est, est - k * se, est + k * se, color=color, ref=ref)
    shown = term if isinstance(estimates, LmerResult) else "Estimate"
    _finish(ax, xlabel=xlabel if xlabel is not None else f"{shown} ± {k:g} SE", ylabel=_label(gname, labels),
            title=title, grid="x")
    return ax


def plot_intercept_distributions(no_pooling: LmResult, multilevel: LmerResult, *, axes: Any = None,
                                 xlabel: str | None = None, bins: int = 20) -> np.ndarray:
    """No-pooling intercepts next to the multilevel model's intercept distribution.

    Left: histogram (density) of the fixed-effects intercepts. Right: the
    fitted distribution N(fixef["(Intercept)"], σ_α²) as a curve, with the
    partial-pooling intercepts as a histogram and a rug. Both panels share
    their x limits.

    Parameters
    ----------
    no_pooling : LmResult
        ``lm(y ~ x + factor(g))``.
    multilevel : LmerResult
        ``lmer(y ~ x + (1 | g))`` on the same data.
    axes : sequence of 2 Axes, optional
    xlabel : str, optional
        Default "Intercept".
    bins : int, default 20

    Returns
    -------
    numpy.ndarray of 2 Axes

    Examples
    --------
    >>> import mlmhelpers as mh
    >>> from mlmhelpers.plots import plot_intercept_distributions
    >>> d = mh.load_arrests()
    >>> fe = mh.lm("violent_arrest_per1000 ~ pop_pct_pov + factor(stusps)", d)
    >>> ml = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", d)
    >>> axes = plot_intercept_distributions(fe, ml)
    """
    fname = "plot_intercept_distributions"
    table = _intercept_pair(no_pooling, multilevel, fname)
    mu, sd = float(multilevel.fixef["(Intercept)"]), _intercept_sd(multilevel)
    nop, part = table["no_pooling"].to_numpy(), table["partial_pooling"].to_numpy()
    lo = min(nop.min(), part.min(), mu - 3 * sd)
    hi = max(nop.max(), part.max(), mu + 3 * sd)
    pad = 0.04 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    edges = np.linspace(lo, hi, bins + 1)
    axs = _axes_array(axes, 2, ncols=2, figsize=(8.0, 3.4), sharey=True)

    axs[0].hist(nop, bins=edges, density=True, color=POOLING_COLORS["none"], alpha=0.75,
                edgecolor="white", linewidth=0.5, gid="no-pooling-hist")
    axs[1].hist(part, bins=edges, density=True, color=POOLING_COLORS["partial"], alpha=0.25,
                edgecolor="white", linewidth=0.5, gid="partial-pooling-hist")
    if sd > 0:
        grid = np.linspace(lo, hi, 300)
        dens = np.exp(-0.5 * ((grid - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
        axs[1].plot(grid, dens, color=POOLING_COLORS["partial"], lw=2.2, gid="normal-density",
                    label=rf"$N(\hat\mu, \hat\sigma_\alpha^2)$" "\n"
                          rf"$\hat\mu$ = {_number(mu)}, $\hat\sigma_\alpha$ = {_number(sd)}")
    else:  # singular fit: the distribution is a spike at the mean
        axs[1].axvline(mu, color=POOLING_COLORS["partial"], lw=2.2, gid="normal-density",
                       label=r"$\hat\sigma_\alpha = 0$ (singular fit)")
    axs[1].plot(part, np.full_like(part, 0.02), "|", color=POOLING_COLORS["partial"], ms=9, mew=1,
                transform=axs[1].get_xaxis_transform(), gid="rug")
    axs[1].legend(loc="upper right", frameon=False, fontsize=9)
    for ax, kind in zip(axs, ("none", "partial"), strict=True):
        ax.set_xlim(lo, hi)
        _finish(ax, xlabel=xlabel or "Intercept", ylabel="Density" if kind == "none" else "",
                title=POOLING_LABELS[kind], grid="y")
        ax.title.set_color(POOLING_COLORS[kind])
    return axs


def _size_scale(n: np.ndarray, max_area: float = 220.0, min_area: float = 10.0):
    """Marker area proportional to ``n`` (with a floor so tiny groups stay visible)."""
    scale = max_area / float(np.max(n))
    return lambda v: np.maximum(np.asarray(v, dtype=float) * scale, min_area)


def _size_legend_values(n: np.ndarray) -> list[int]:
    """Up to three round group sizes (largest, about a quarter, about a twentieth) for a size legend."""
    nice = [v * 10**e for e in range(7) for v in (1, 2, 5)]
    lo, hi = float(np.min(n)), float(np.max(n))
    inside = [v for v in nice if lo <= v <= hi]
    if not inside:
        return [int(round(hi))]
    top = inside[-1]
    picks = {min(inside, key=lambda v: abs(np.log(v) - np.log(top / f))) for f in (1, 4, 20)}
    return sorted(picks)


def plot_shrinkage(no_pooling: LmResult, multilevel: LmerResult, *, axes: Any = None,
                   measure: Literal["factor", "shift"] = "factor", xlabel: str | None = None,
                   labels: Mapping[str, str] | None = None) -> np.ndarray:
    """How partial pooling shrinks each group's intercept toward the overall mean.

    Left: one row per group (labelled with its size n), sorted by its
    no-pooling intercept. An arrow runs from the no-pooling (fixed-effects)
    intercept, an open circle with area proportional to n, to the
    partial-pooling (multilevel) intercept, a filled dot; the dashed line is
    the overall mean, the multilevel fixed intercept. Shifts too short to
    show a head are drawn as plain segments. Right: how much each group is
    shrunk against its size n (log scale): small groups shrink most.

    Parameters
    ----------
    no_pooling : LmResult
        ``lm(y ~ x + factor(g))``.
    multilevel : LmerResult
        ``lmer(y ~ x + (1 | g))`` on the same data.
    axes : sequence of 2 Axes, optional
        Default: a new figure tall enough for one labelled row per group.
    measure : {"factor", "shift"}, default "factor"
        Right panel's y: ``"factor"`` is the shrinkage factor
        ``1 − w = σ² / (n σ²_α + σ²)`` (0: the group keeps its own estimate,
        1: complete pooling; ``w`` is ``shrinkage_table``'s
        ``shrinkage_factor``), drawn as the model's curve with the groups on
        it; ``"shift"`` is ``|partial − no pooling|`` in outcome units.
    xlabel : str, optional
        Left panel's x label; default "Intercept".
    labels : mapping, optional
        Label of the grouping column, e.g. ``{"stusps": "State"}``.

    Returns
    -------
    numpy.ndarray of 2 Axes

    See Also
    --------
    mlmhelpers.shrinkage_table : the numbers drawn here.

    Examples
    --------
    >>> import mlmhelpers as mh
    >>> from mlmhelpers.plots import plot_shrinkage
    >>> d = mh.load_arrests()
    >>> fe = mh.lm("violent_arrest_per1000 ~ pop_pct_pov + factor(stusps)", d)
    >>> ml = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", d)
    >>> axes = plot_shrinkage(fe, ml)
    """
    fname = "plot_shrinkage"
    if measure not in ("factor", "shift"):
        raise ValueError(f"{fname}(): measure must be 'factor' or 'shift', got {measure!r}.")
    table = _intercept_pair(no_pooling, multilevel, fname).sort_values("no_pooling", kind="stable")
    labels = _check_labels(labels)
    glabel = _label(multilevel.design.group_name, labels)
    width, height = _tall_figsize(len(table), width=8.0)
    axs = _axes_array(axes, 2, ncols=2, figsize=(width, min(height, 9.5)),
                      gridspec_kw={"width_ratios": [1.35, 1.0]})
    _draw_shrinkage_arrows(axs[0], table, glabel, xlabel)
    _draw_shrinkage_by_size(axs[1], table, multilevel, measure)
    return axs


def _draw_shrinkage_arrows(ax: Axes, table: pd.DataFrame, glabel: str, xlabel: str | None) -> None:
    n = table["n"].to_numpy(dtype=float)
    nop, part = table["no_pooling"].to_numpy(), table["partial_pooling"].to_numpy()
    overall = float(table["overall"].iloc[0])
    pos = np.arange(len(table))
    area = _size_scale(n)
    span = max(np.ptp(np.concatenate([nop, part, [overall]])), np.finfo(float).tiny)
    ax.axvline(overall, color=POOLING_COLORS["complete"], ls="--", lw=1.2, zorder=1, gid="overall-mean")
    for y0, a, b in zip(pos, nop, part, strict=True):
        head = abs(b - a) >= 0.015 * span  # a head on a tiny shift would only hide the markers
        style = "-|>,head_length=0.45,head_width=0.2" if head else "-"
        ax.annotate("", xy=(b, y0), xytext=(a, y0), gid="shrinkage-arrow",
                    arrowprops={"arrowstyle": style, "color": _DARK_GREY, "lw": 1.1, "shrinkA": 0, "shrinkB": 0})
    ax.scatter(nop, pos, s=area(n), facecolors="none", edgecolors=POOLING_COLORS["none"], linewidths=1.3,
               zorder=3, gid="no-pooling")
    ax.scatter(part, pos, s=14, color=POOLING_COLORS["partial"], zorder=4, gid="partial-pooling")
    ax.set_yticks(pos, [f"{lv} (n={int(k)})" for lv, k in zip(table.index, n, strict=True)])
    ax.tick_params(axis="y", labelsize=_ytick_fontsize(len(table)), length=0)
    ax.set_ylim(-0.8, len(table) - 0.2)
    handles = [
        Line2D([], [], ls="none", marker="o", mfc="none", mec=POOLING_COLORS["none"], mew=1.3, ms=8,
               label=POOLING_LABELS["none"]),
        Line2D([], [], ls="none", marker="o", color=POOLING_COLORS["partial"], ms=4.5,
               label=POOLING_LABELS["partial"]),
        Line2D([], [], color=POOLING_COLORS["complete"], ls="--", lw=1.2, label="Overall mean"),
    ]
    handles += [Line2D([], [], ls="none", marker="o", mfc="none", mec=POOLING_COLORS["none"], mew=1.0,
                       ms=float(np.sqrt(area(v))), label=f"n = {v}") for v in _size_legend_values(n)]
    ax.legend(handles=handles, loc="lower right" if len(table) > 20 else "best", frameon=True, framealpha=0.95,
              edgecolor="none", fontsize=8, labelspacing=0.9, borderpad=0.8)
    _finish(ax, xlabel=xlabel or "Intercept", ylabel=glabel, grid="x")
    ax.set_title("Intercepts move toward the mean", fontsize=11)


def _draw_shrinkage_by_size(ax: Axes, table: pd.DataFrame, multilevel: LmerResult,
                            measure: Literal["factor", "shift"]) -> None:
    n = table["n"].to_numpy(dtype=float)
    color = POOLING_COLORS["partial"]
    if measure == "factor":
        yv = 1.0 - table["shrinkage_factor"].to_numpy()
        s2a, s2 = _intercept_sd(multilevel) ** 2, multilevel.sigma**2
        lo = n.min() / 1.25
        grid = np.geomspace(lo, max(n.max() * 1.25, 10 * lo), 200)  # at least a decade
        curve = s2 / (grid * s2a + s2)
        ax.plot(grid, curve, color=color, lw=1.5, alpha=0.5, zorder=2, gid="shrinkage-curve")
        ax.text(0.96, 0.96, r"$1 - w_j = \dfrac{\sigma^2}{n_j\,\sigma_\alpha^2 + \sigma^2}$",
                transform=ax.transAxes, ha="right", va="top", fontsize=13)
        ylabel = "Shrinkage toward the mean, 1 − w"
        top = curve.max()
    else:
        yv = np.abs(table["shift"].to_numpy())
        ylabel = "|Partial − no-pooling intercept|"
        top = yv.max()
    ax.set_ylim(0, top * 1.15 if top > 0 else 1.0)
    ax.scatter(n, yv, s=22, color=color, alpha=0.85, linewidths=0, zorder=3, gid="shrinkage-points")
    _label_top_points(ax, table.index, n, yv, top=5)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    _finish(ax, xlabel="Group size n (log scale)", ylabel=ylabel)
    ax.set_title("Small groups shrink most", fontsize=11)


def _label_top_points(ax: Axes, names: pd.Index, x: np.ndarray, y: np.ndarray, top: int) -> None:
    """Name the ``top`` highest points; groups of the same size at nearly the same height share a label."""
    order = np.argsort(-y, kind="stable")[:top]
    close = 0.03 * (float(np.max(y) - np.min(y)) or 1.0)
    spots: list[tuple[float, float, list[str]]] = []
    for i in order:
        for xs, ys, who in spots:
            if np.isclose(xs, x[i]) and abs(ys - y[i]) < close:
                who.append(str(names[i]))
                break
        else:
            spots.append((float(x[i]), float(y[i]), [str(names[i])]))
    for xi, yi, who in spots:
        text = ", ".join(who) if len(who) <= 3 else f"{who[0]}, {who[1]} and {len(who) - 2} more"
        ax.annotate(text, (xi, yi), xytext=(6, 2), textcoords="offset points", fontsize=8,
                    color="#333333", gid="point-label")


def plot_pooling_lines(data: pd.DataFrame, x: str, *, complete: LmResult, no_pooling: LmResult,
                       partial: LmerResult, groups: Sequence[Any], axes: Any = None, ncols: int = 3,
                       labels: Mapping[str, str] | None = None) -> np.ndarray:
    """Small multiples: each chosen group's points with its three pooling lines.

    Parameters
    ----------
    data : DataFrame
    x : str
        The predictor on the x axis.
    complete : LmResult
        Complete pooling, ``lm(y ~ x)``.
    no_pooling : LmResult
        No pooling, ``lm(y ~ x + factor(g))``.
    partial : LmerResult
        Partial pooling, ``lmer(y ~ x + (1 | g))``.
    groups : sequence
        Levels of the grouping factor, one panel each.
    axes : sequence of Axes, optional
        At least ``len(groups)`` Axes; default a new grid.
    ncols : int, default 3
    labels : mapping, optional
        Axis labels by column name.

    Returns
    -------
    numpy.ndarray of Axes
        One per group, in the order of ``groups``.

    Examples
    --------
    >>> import mlmhelpers as mh
    >>> from mlmhelpers.plots import plot_pooling_lines
    >>> d = mh.load_arrests()
    >>> pooled = mh.lm("violent_arrest_per1000 ~ pop_pct_pov", d)
    >>> fe = mh.lm("violent_arrest_per1000 ~ pop_pct_pov + factor(stusps)", d)
    >>> ml = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", d)
    >>> axes = plot_pooling_lines(d, "pop_pct_pov", complete=pooled, no_pooling=fe, partial=ml,
    ...                           groups=["DC", "DE", "HI", "CA", "TX", "NY"])
    """
    fname = "plot_pooling_lines"
    _check_model(complete, LmResult, fname, "complete")
    _check_model(no_pooling, LmResult, fname, "no_pooling")
    _check_model(partial, LmerResult, fname, "partial")
    if isinstance(ncols, bool) or not isinstance(ncols, (int, np.integer)) or ncols < 1:
        raise ValueError(f"{fname}(): ncols must be a positive integer, got {ncols!r}.")
    g = partial.design.group_name
    _group_column(no_pooling, g, fname)
    _check_columns(data, [g], fname, numeric=[x])
    y = _response(partial, data, fname)
    labels = _check_labels(labels)
    if groups is None:
        raise ValueError(f"{fname}(): pass groups=, the levels of {g!r} to draw.")
    chosen = _resolve_groups(groups, partial.design.levels, g)
    ncols = min(int(ncols), len(chosen))
    nrows = int(np.ceil(len(chosen) / ncols))
    created = axes is None
    width = min(max(2.6 * ncols, 4.5), 8.0)
    axs = _axes_array(axes, len(chosen), ncols=ncols, figsize=(width, 2.3 * nrows + 0.7 + (width < 6) * 0.5),
                      sharex=True, sharey=True)
    rows = _finite_xy(data, x, y)
    models = {"complete": complete, "none": no_pooling, "partial": partial}
    styles = {"complete": {"ls": "--", "lw": 1.6}, "none": {"ls": "-", "lw": 1.8}, "partial": {"ls": "-", "lw": 2.2}}
    lo, hi = rows[x].min(), rows[x].max()
    curves = {"complete": _predict_curves(complete, data, x, [(None, lo, hi)]) * len(chosen)}
    for kind in ("none", "partial"):
        curves[kind] = _predict_curves(models[kind], data, x, [(lv, lo, hi) for lv in chosen], group=g)
    for i, (ax, level) in enumerate(zip(axs, chosen, strict=True)):
        sub = rows.loc[rows[g] == level]
        _scatter(ax, sub[x], sub[y], len(sub), color=_POINT_GREY, alpha=0.8, gid="points")
        for kind in models:
            gx, gy = curves[kind][i]
            ax.plot(gx, gy, color=POOLING_COLORS[kind], label=POOLING_LABELS[kind], gid=f"{kind}-line",
                    **styles[kind])
        _finish(ax, xlabel=_label(x, labels), ylabel=_label(y, labels))
        ax.set_title(f"{level} (n = {len(sub)})", fontsize=10)
        if created:
            ax.label_outer()
    fig = axs[0].figure
    handles = [Line2D([], [], color=POOLING_COLORS[k], label=POOLING_LABELS[k], **styles[k]) for k in models]
    if created:
        fig.legend(handles=handles, loc="outside upper center", ncols=3 if width >= 6 else 1, frameon=False,
                   fontsize=9)
    else:
        axs[0].legend(handles=handles, loc="best", frameon=False, fontsize=8)
    return axs


def plot_estimates_vs_truth(estimated: pd.Series | pd.DataFrame, truth: pd.Series, *, ax: Axes | None = None,
                            labels: Mapping[str, str] | None = None, k: float = 2.0,
                            title: str | None = None) -> Axes:
    """Estimated group coefficients against the true values of a simulation.

    Points on the dashed identity line are recovered exactly; points below
    it are underestimated.

    Parameters
    ----------
    estimated : Series or DataFrame
        Estimates indexed by group, e.g. ``m3.coef["(Intercept)"]``; or a
        table with an ``estimate`` column and optionally ``std_error``
        (drawn as ± ``k`` SE bars), e.g. ``coef_intervals(m3)``.
    truth : Series
        True values indexed by the same groups.
    ax : Axes, optional
        Default: a new square-ish figure.
    labels : mapping, optional
        Axis labels for ``"truth"`` and ``"estimate"``, e.g.
        ``{"truth": "True base salary ($)", "estimate": "Estimated intercept ($)"}``.
    k : float, default 2
    title : str, optional

    Returns
    -------
    Axes

    Examples
    --------
    >>> import pandas as pd
    >>> import mlmhelpers as mh
    >>> from mlmhelpers.datasets import FACULTY_DEPARTMENTS
    >>> from mlmhelpers.plots import plot_estimates_vs_truth
    >>> m3 = mh.lmer("salary ~ experience + (1 + experience | department)", mh.load_faculty())
    >>> truth = pd.Series({d: base for d, (base, raise_) in FACULTY_DEPARTMENTS.items()})
    >>> ax = plot_estimates_vs_truth(mh.coef_intervals(m3), truth)
    """
    fname = "plot_estimates_vs_truth"
    if isinstance(estimated, pd.Series):
        est, se = estimated.astype(float), None
    elif isinstance(estimated, pd.DataFrame):
        if "estimate" not in estimated.columns:
            if estimated.shape[1] != 1:
                raise ValueError(f"{fname}(): estimated needs an 'estimate' column (and optionally 'std_error'); "
                                 f"it has {list(estimated.columns)}.")
            est, se = estimated.iloc[:, 0].astype(float), None
        else:
            est = estimated["estimate"].astype(float)
            se = estimated["std_error"].astype(float) if "std_error" in estimated.columns else None
    else:
        raise TypeError(f"{fname}() needs estimated to be a pandas Series or DataFrame, "
                        f"got {type(estimated).__name__}.")
    if not isinstance(truth, pd.Series):
        raise TypeError(f"{fname}() needs truth to be a pandas Series indexed by group, got {type(truth).__name__}.")
    missing = [g for g in est.index if g not in truth.index]
    if missing:
        raise ValueError(f"{fname}(): no true value for group(s) {', '.join(map(str, missing))}; "
                         f"truth has {', '.join(map(str, truth.index))}.")
    k = _check_k(k)
    labels = _check_labels(labels)
    tv = truth.reindex(est.index).astype(float).to_numpy()
    ev = est.to_numpy()
    ax = _single_axes(ax, figsize=(5.5, 5.0))
    color = POOLING_COLORS["partial"]
    lo_hi = [tv, ev] if se is None else [tv, ev - k * se.to_numpy(), ev + k * se.to_numpy()]
    lo, hi = float(np.min([a.min() for a in lo_hi])), float(np.max([a.max() for a in lo_hi]))
    pad = 0.06 * (hi - lo if hi > lo else 1.0)
    lims = (lo - pad, hi + pad)
    ax.plot(lims, lims, color="#7F7F7F", ls="--", lw=1, gid="identity", label="Estimate = truth")
    if se is not None:
        ax.vlines(tv, ev - k * se.to_numpy(), ev + k * se.to_numpy(), color=color, lw=1.6, alpha=0.7,
                  gid="intervals", label=f"± {k:g} SE")
    ax.plot(tv, ev, "o", color=color, ms=6, gid="estimates", label="Estimate")
    if len(ev) <= 12:
        for name, xi, yi in zip(est.index, tv, ev, strict=True):
            ax.annotate(str(name), (xi, yi), xytext=(7, -3), textcoords="offset points", fontsize=9,
                        color="#333333")
    ax.set_xlim(lims)
    ax.set_ylim(lims)
    ax.set_aspect("equal", adjustable="box")
    ax.legend(loc="upper left", frameon=False, fontsize=9)
    _finish(ax, xlabel=labels.get("truth", "True value"), ylabel=labels.get("estimate", "Estimate"), title=title)
    return ax


def plot_criterion_curve(model: LmerResult, *, ax: Axes | None = None, grid: Sequence[float] | None = None,
                         title: str | None = None) -> Axes:
    """The profiled REML criterion (or ML deviance) as a function of θ.

    For a random-intercept model θ = σ_α / σ is the only parameter ``lmer``
    optimises; β̂ and σ̂ follow from it in closed form. The curve is
    evaluated with :meth:`LmerResult.criterion` and the optimum found
    by ``lmer`` is marked.

    Parameters
    ----------
    model : LmerResult
        A fit with a single θ, e.g. ``y ~ x + (1 | g)``.
    ax : Axes, optional
    grid : sequence of float, optional
        θ values (≥ 0); default 0 to 2.5 θ̂ (at least 0 to 1). θ̂ is always added.
    title : str, optional

    Returns
    -------
    Axes

    Examples
    --------
    >>> import mlmhelpers as mh
    >>> from mlmhelpers.plots import plot_criterion_curve
    >>> m1 = mh.lmer("salary ~ experience + (1 | department)", mh.load_faculty())
    >>> ax = plot_criterion_curve(m1)
    """
    fname = "plot_criterion_curve"
    _check_model(model, LmerResult, fname)
    if model.n_theta != 1:
        raise ValueError(f"{fname}() needs a model with one θ parameter (a random intercept, y ~ x + (1 | g)); "
                         f"this model has {model.n_theta}: {', '.join(model.theta.index)}.")
    theta_hat = float(model.sol.theta[0])
    if grid is None:
        grid_arr = np.linspace(0.0, max(2.5 * theta_hat, 1.0), 241)
    else:
        grid_arr = np.asarray(grid, dtype=float).ravel()
        if grid_arr.size < 2 or not np.all(np.isfinite(grid_arr)) or np.any(grid_arr < 0):
            raise ValueError(f"{fname}(): grid must hold at least two finite θ values ≥ 0.")
    # θ̂ itself is added; a grid point equal to it up to rounding (the default grid holds θ̂·k/96) is dropped
    grid_arr = grid_arr[~np.isclose(grid_arr, theta_hat, rtol=1e-12, atol=0.0)]
    grid_arr = np.unique(np.append(grid_arr, theta_hat))
    values = np.array([model.criterion(t) for t in grid_arr])
    best = model.criterion(theta_hat)
    name = "REML criterion" if model.REML else "Deviance (−2 log-likelihood)"
    ax = _single_axes(ax)
    ax.plot(grid_arr, values, color=POOLING_COLORS["partial"], lw=2, gid="criterion")
    ax.axvline(theta_hat, color="#7F7F7F", ls=":", lw=1, zorder=1)
    ax.plot([theta_hat], [best], "o", color=POOLING_COLORS["none"], ms=7, zorder=3, gid="optimum",
            label=rf"minimum: $\hat\theta$ = {theta_hat:.3f}, {name} = {best:,.1f}")
    ax.legend(loc="best", frameon=True, framealpha=0.9, edgecolor="none", fontsize=9)
    _finish(ax, xlabel=r"$\theta = \sigma_\alpha / \sigma$ (relative SD of the random intercept)", ylabel=name,
            title=title)
    return ax


# =============================================================================== Uncertainty
# Figures of the chapter on uncertainty and p-values: a likelihood profile (lme4's
# ``xyplot(profile(m))``) and a parametric-bootstrap distribution (``plot(bootMer(...))``).


def plot_profile(prof: Any, parm: str, *, level: float = 0.95, wald_se: float | None = None,
                 ax: Axes | None = None, xlabel: str | None = None, title: str | None = None) -> Axes:
    """The signed root deviance ζ of one parameter's likelihood profile, with its interval.

    ζ(x) = sign(x − x̂) √(d(x) − d(x̂)) is drawn through the profile points;
    the horizontal lines at ±z (z the normal quantile of ``level``) cut it at
    the ends of the profile interval, which are marked. With ``wald_se`` the
    straight line ζ = (x − x̂) / SE is added: the profile a Wald interval
    assumes, whose crossings with ±z are the Wald interval's ends.

    Parameters
    ----------
    prof : Profile
        A result of :func:`mlmhelpers.profile`.
    parm : str
        The profiled parameter, by lme4 name (``".sig01"``, ``".sigma"``, a fixed effect).
    level : float, default 0.95
    wald_se : float, optional
        Standard error of the estimate for the Wald line.
    ax : Axes, optional
    xlabel, title : str, optional

    Returns
    -------
    Axes

    Notes
    -----
    R equivalent: ``lattice::xyplot(profile(m), which = parm)`` (lme4 draws ζ;
    ``absVal = TRUE`` draws |ζ|).

    Examples
    --------
    >>> import mlmhelpers as mh
    >>> from mlmhelpers.plots import plot_profile
    >>> m = mh.lmer("salary ~ experience + (1 | department)", mh.load_faculty())
    >>> ax = plot_profile(mh.profile(m, which=[".sig01"]), ".sig01")
    """
    from .profile import Profile

    fname = "plot_profile"
    if not isinstance(prof, Profile):
        raise TypeError(f"{fname}() needs a Profile from mlmhelpers.profile(m), got {type(prof).__name__}.")
    if parm not in set(prof.table[".par"]):
        raise ValueError(f"{fname}(): no profile of {parm!r}; profiled parameters: "
                         f"{', '.join(map(str, prof.table['.par'].unique()))}.")
    if not 0 < level < 1:
        raise ValueError(f"{fname}(): level must be between 0 and 1, got {level}.")
    if wald_se is not None and not (np.isfinite(wald_se) and wald_se > 0):
        raise ValueError(f"{fname}(): wald_se must be a positive number, got {wald_se}.")
    pts = prof.table[prof.table[".par"] == parm].sort_values("value")
    x, zeta = pts["value"].to_numpy(float), pts[".zeta"].to_numpy(float)
    est = float(prof.estimates[parm])
    z = float(_norm_ppf(0.5 + level / 2))
    ci = prof.confint(level).loc[parm]
    ax = _single_axes(ax)
    ax.plot(x, zeta, "-", color=POOLING_COLORS["partial"], lw=2, gid="profile", label="profile")
    ax.plot(x, zeta, "o", color=POOLING_COLORS["partial"], ms=3, gid="profile-points")
    if wald_se is not None:
        # over the ζ range of the profile (at least ±1.2 z), so that both lines share one scale
        zlo, zhi = min(zeta.min(), -1.2 * z), max(zeta.max(), 1.2 * z)
        xs = est + wald_se * np.array([zlo, zhi])
        ax.plot(xs, (xs - est) / wald_se, "--", color=POOLING_COLORS["none"], lw=1.5, gid="wald",
                label="Wald (straight line)")
    for h in (-z, z):
        ax.axhline(h, color="#7F7F7F", ls=":", lw=1, zorder=1)
    ends = [float(ci["lower"]), float(ci["upper"])]
    ax.plot(ends, [-z, z], "s", color=POOLING_COLORS["complete"], ms=6, zorder=3, gid="interval",
            label=f"{100 * level:g} % profile interval")
    ax.plot([est], [0.0], "o", color=POOLING_COLORS["complete"], ms=7, mfc="white", zorder=3,
            gid="estimate", label="estimate")
    ax.legend(loc="upper left", frameon=True, framealpha=0.9, edgecolor="none", fontsize=9)
    _finish(ax, xlabel=xlabel or parm, ylabel=r"$\zeta$ (signed root deviance difference)", title=title)
    return ax


def plot_bootstrap(boot: pd.DataFrame, column: str | None = None, *, level: float | None = 0.95,
                   t0: float | None = None, t0_label: str = "estimate", bins: int = 30, ax: Axes | None = None,
                   xlabel: str | None = None, title: str | None = None) -> Axes:
    """Histogram of one column of a parametric bootstrap, its estimate and percentile interval.

    Parameters
    ----------
    boot : DataFrame
        A result of :func:`mlmhelpers.bootstrap` (one column per statistic).
    column : str, optional
        The statistic to draw; needed when ``boot`` has several columns.
    level : float or None, default 0.95
        Shade the percentile interval (:func:`mlmhelpers.boot_intervals`); ``None``: no interval.
    t0 : float, optional
        The estimate from the data, drawn as a vertical line; default
        ``boot.attrs["t0"][column]`` when present.
    t0_label : str, default "estimate"
        Its legend label (``"observed"`` for a test statistic).
    bins : int, default 30
    ax : Axes, optional
    xlabel, title : str, optional

    Returns
    -------
    Axes

    Notes
    -----
    R equivalent: ``plot(b, index = i)`` for ``b <- bootMer(m, FUN, nsim)``.

    Examples
    --------
    >>> import mlmhelpers as mh
    >>> from mlmhelpers.plots import plot_bootstrap
    >>> m = mh.lmer("salary ~ experience + (1 | department)", mh.load_faculty())
    >>> b = mh.bootstrap(m, lambda fit: mh.icc(fit), nsim=50, seed=1)
    >>> ax = plot_bootstrap(b)
    """
    from .bootstrap import boot_intervals

    fname = "plot_bootstrap"
    if not isinstance(boot, pd.DataFrame):
        raise TypeError(f"{fname}() needs the DataFrame returned by mlmhelpers.bootstrap(), "
                        f"got {type(boot).__name__}.")
    if column is None:
        if boot.shape[1] != 1:
            raise ValueError(f"{fname}(): boot has {boot.shape[1]} columns; pass column= one of "
                             f"{', '.join(map(str, boot.columns))}.")
        column = boot.columns[0]
    if column not in boot.columns:
        raise ValueError(f"{fname}(): no column {column!r}; columns: {', '.join(map(str, boot.columns))}.")
    vals = boot[column].to_numpy(float)
    vals = vals[np.isfinite(vals)]
    if vals.size < 2:
        raise ValueError(f"{fname}(): column {column!r} has fewer than two finite replicates.")
    if t0 is None:
        t0_attr = boot.attrs.get("t0")
        if t0_attr is not None:
            t0 = float(pd.Series(t0_attr, index=boot.columns)[column])
    ax = _single_axes(ax)
    ax.hist(vals, bins=bins, color=POOLING_COLORS["partial"], alpha=0.6, edgecolor="white", gid="replicates",
            label=f"{vals.size:,} bootstrap replicates")
    if level is not None:
        ci = boot_intervals(boot[[column]], level=level).loc[column]
        ax.axvspan(float(ci["lower"]), float(ci["upper"]), color="#7F7F7F", alpha=0.15, zorder=0,
                   gid="interval", label=f"{100 * level:g} % percentile interval")
    if t0 is not None:
        ax.axvline(t0, color=POOLING_COLORS["none"], lw=2, gid="estimate", label=f"{t0_label}: {_number(t0)}")
    ax.legend(loc="best", frameon=True, framealpha=0.9, edgecolor="none", fontsize=9)
    _finish(ax, xlabel=xlabel or str(column), ylabel="Number of replicates", title=title, grid="y")
    return ax


def _norm_ppf(p: float) -> float:
    """Normal quantile (scipy), kept local so that importing the plots stays light."""
    from scipy import stats

    return float(stats.norm.ppf(p))
# =============================================================================
# Model checking: residuals, QQ plots with a reference band, the conditional
# modes per grouping factor, and simulated-versus-observed statistics
# (chapter "Checking a multilevel model").
# =============================================================================


_BAND_COLOR = "#56B4E9"  # sky blue (Okabe–Ito)


def _ppoints(n: int) -> np.ndarray:
    """R's ``ppoints(n)``: ``(i − a) / (n + 1 − 2a)``, a = 3/8 for n ≤ 10, else 1/2."""
    a = 3.0 / 8.0 if n <= 10 else 0.5
    return (np.arange(1, n + 1) - a) / (n + 1 - 2 * a)


def qq_table(sample: Any, *, loc: float | None = 0.0, scale: float | None = 1.0,
             level: float = 0.95) -> pd.DataFrame:
    """The points of a normal QQ plot and a pointwise reference band.

    The i-th smallest of n values from N(loc, scale²) is ``loc + scale·Φ⁻¹(U₍ᵢ₎)``
    where the uniform order statistic U₍ᵢ₎ has a Beta(i, n − i + 1)
    distribution; the band holds its central ``level`` quantiles. Each point
    is inside its band with probability ``level`` if the sample is normal, so
    about ``(1 − level)·n`` points outside are expected even then (and
    neighbouring points leave the band together).

    Parameters
    ----------
    sample : array-like or Series
        Finite values (e.g. scaled residuals or conditional modes).
    loc, scale : float or None, default 0 and 1
        The reference normal distribution; ``None`` uses the sample's mean
        and standard deviation (ddof = 1).
    level : float, default 0.95
        Pointwise coverage of the band.

    Returns
    -------
    DataFrame
        Sorted by the sample, with columns ``theoretical`` (normal quantiles
        at R's ``ppoints``), ``sample``, ``reference``, ``lower``, ``upper``
        and ``outside`` (bool), indexed like the sorted sample.

    Notes
    -----
    R equivalent: ``qqnorm(x)`` with ``qqline``; the band is the pointwise
    order-statistic band of ``car::qqPlot(x, envelope = list(style = "lines"))``
    when its parameters are given.

    Examples
    --------
    >>> import numpy as np
    >>> from mlmhelpers.plots import qq_table
    >>> t = qq_table(np.random.default_rng(1).standard_normal(200))
    >>> list(t.columns)
    ['theoretical', 'sample', 'reference', 'lower', 'upper', 'outside']
    >>> bool((t["lower"] < t["reference"]).all() and (t["reference"] < t["upper"]).all())
    True
    """
    from scipy import stats

    values = sample if isinstance(sample, pd.Series) else pd.Series(np.asarray(sample, dtype=float).ravel())
    values = values.astype(float)
    if values.size < 3 or not np.all(np.isfinite(values.to_numpy())):
        raise ValueError(f"qq_table(): the sample must hold at least 3 finite values, got {values.size} "
                         f"({int((~np.isfinite(values.to_numpy())).sum())} not finite).")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level!r}.")
    loc = float(values.mean()) if loc is None else float(loc)
    scale = float(values.std(ddof=1)) if scale is None else float(scale)
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}.")
    ordered = values.sort_values(kind="stable")
    n = ordered.size
    i = np.arange(1, n + 1)
    alpha = (1.0 - level) / 2.0
    theo = stats.norm.ppf(_ppoints(n))
    lower = loc + scale * stats.norm.ppf(stats.beta.ppf(alpha, i, n - i + 1))
    upper = loc + scale * stats.norm.ppf(stats.beta.ppf(1.0 - alpha, i, n - i + 1))
    s = ordered.to_numpy()
    return pd.DataFrame({"theoretical": theo, "sample": s, "reference": loc + scale * theo,
                         "lower": lower, "upper": upper, "outside": (s < lower) | (s > upper)},
                        index=ordered.index)


def plot_qq(sample: Any, *, ax: Axes | None = None, loc: float | None = 0.0, scale: float | None = 1.0,
            level: float = 0.95, ylabel: str = "Sample quantiles", title: str | None = None) -> Axes:
    """Normal QQ plot with the reference line and a pointwise band (see :func:`qq_table`).

    Points outside the band are drawn in a second colour; the legend counts
    them against the number expected for a normal sample.

    Parameters
    ----------
    sample : array-like or Series
        E.g. ``m.residuals(scaled=True)`` (compare with N(0, 1), the default).
    ax : Axes, optional
    loc, scale : float or None, default 0 and 1
        The reference normal distribution; ``None`` estimates them from the sample.
    level : float, default 0.95
        Pointwise coverage of the band.
    ylabel, title : str, optional

    Returns
    -------
    Axes

    Notes
    -----
    R equivalent: ``qqnorm(resid(m, scaled = TRUE)); qqline(...)``, or
    ``car::qqPlot``.

    Examples
    --------
    >>> import mlmhelpers as mh
    >>> from mlmhelpers.plots import plot_qq
    >>> m = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", mh.load_arrests())
    >>> ax = plot_qq(m.residuals(scaled=True), ylabel="Scaled residuals")
    """
    table = qq_table(sample, loc=loc, scale=scale, level=level)
    ax = _single_axes(ax, figsize=(5.5, 4.5))
    ax.fill_between(table["theoretical"], table["lower"], table["upper"], color=_BAND_COLOR, alpha=0.3,
                    linewidth=0, gid="band", label=f"{level:.0%} pointwise band")
    ax.plot(table["theoretical"], table["reference"], color=_DARK_GREY, lw=1.2, gid="reference",
            label="normal reference")
    out = table["outside"].to_numpy()
    style = _point_style(len(table))
    ax.scatter(table["theoretical"][~out], table["sample"][~out], color=POOLING_COLORS["partial"], gid="points",
               **style)
    n_out, expected = int(out.sum()), (1 - level) * len(table)
    ax.scatter(table["theoretical"][out], table["sample"][out], color=POOLING_COLORS["none"], gid="outside",
               label=f"outside: {n_out:,} (≈{expected:,.0f} expected)", **style)
    ax.legend(loc="upper left", frameon=True, framealpha=0.9, edgecolor="none", fontsize=8)
    _finish(ax, xlabel="Normal quantiles", ylabel=ylabel, title=title)
    return ax


def plot_residuals(model: LmerResult, x: str | None = None, *, ax: Axes | None = None, scaled: bool = True,
                   bins: int = 20, labels: Mapping[str, str] | None = None, title: str | None = None) -> Axes:
    """Residuals against fitted values (``x=None``) or against a column of the model's data.

    A horizontal line marks zero and a line joins the mean residual within
    ``bins`` bins of equal count along the x axis: if the model's mean
    structure is right it stays near zero; a funnel of points means the
    residual variance changes with x.

    Parameters
    ----------
    model : LmerResult
    x : str, optional
        A numeric column of the data the model was fitted to; default the fitted values.
    ax : Axes, optional
    scaled : bool, default True
        Residuals divided by σ̂ (R: ``residuals(m, scaled = TRUE)``).
    bins : int, default 20
        Number of equal-count bins for the line of mean residuals.
    labels : mapping, optional
        Axis labels by column name.
    title : str, optional

    Returns
    -------
    Axes

    Notes
    -----
    R equivalent: ``plot(m)`` (residuals against fitted values) or
    ``plot(m, resid(., scaled = TRUE) ~ x)``.

    Examples
    --------
    >>> import mlmhelpers as mh
    >>> from mlmhelpers.plots import plot_residuals
    >>> m = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", mh.load_arrests())
    >>> ax = plot_residuals(m)
    >>> ax = plot_residuals(m, "pop_pct_pov")
    """
    fname = "plot_residuals"
    _check_model(model, LmerResult, fname)
    labels = _check_labels(labels)
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}.")
    resid = model.residuals(scaled=scaled)
    if x is None:
        xs = model.fitted.to_numpy()
        xlabel = "Fitted values"
    else:
        if model.data is None:
            raise ValueError(f"{fname}(): the model keeps no data; pass x=None (fitted values).")
        _check_columns(model.data, [x], fname, numeric=[x])
        xs = model.data.loc[resid.index, x].to_numpy(dtype=float)
        xlabel = _label(x, labels)
    r = resid.to_numpy()
    ax = _single_axes(ax)
    ax.scatter(xs, r, color=_POINT_GREY, gid="points", **_point_style(len(r)))
    ax.axhline(0.0, color=_DARK_GREY, lw=1, gid="zero")
    order = np.argsort(xs, kind="stable")
    groups = np.array_split(order, min(int(bins), len(order)))
    bx = np.array([xs[g].mean() for g in groups])
    by = np.array([r[g].mean() for g in groups])
    ax.plot(bx, by, "o-", color=POOLING_COLORS["partial"], lw=1.8, ms=4, gid="binned_mean",
            label=f"mean residual in {len(groups)} bins of equal count")
    ax.legend(loc="upper right", frameon=True, framealpha=0.9, edgecolor="none", fontsize=9)
    _finish(ax, xlabel=xlabel, ylabel="Scaled residuals" if scaled else "Residuals", title=title)
    return ax


def plot_ranef_qq(model: LmerResult, *, axes: Any = None, level: float = 0.95) -> np.ndarray:
    """Normal QQ plots of the conditional modes, one panel per grouping factor and term.

    Each panel compares the conditional modes (BLUPs) with N(0, σ̂²) for the
    term's estimated standard deviation σ̂ (reference line and band from
    :func:`qq_table`). The conditional modes are shrunk toward zero, more
    for small groups, so their spread is smaller than σ̂ and their shape
    mixes the true effects' distribution with the shrinkage: the plot is a
    rough check of the normality assumption, not a test.

    Parameters
    ----------
    model : LmerResult
    axes : sequence of Axes, optional
        At least one per (factor, term) pair.
    level : float, default 0.95
        Pointwise coverage of the band.

    Returns
    -------
    ndarray of Axes
        In lme4's order of factors, then terms.

    Notes
    -----
    R equivalent: ``lattice::qqmath(ranef(m))`` (without the band) or
    ``qqnorm(ranef(m)$g[, 1])``.

    Examples
    --------
    >>> import mlmhelpers as mh
    >>> from mlmhelpers.plots import plot_ranef_qq
    >>> m = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", mh.load_arrests())
    >>> axes = plot_ranef_qq(m)
    >>> axes[0].get_title()
    'stusps: (Intercept)'
    """
    fname = "plot_ranef_qq"
    _check_model(model, LmerResult, fname)
    tables = model._ranef_tables()
    vc = model.varcorr
    variances = vc[vc["var2"].isna() & (vc["grp"] != "Residual")]
    panels = []
    for factor, table in tables.items():
        for term in table.columns:
            rows = variances[variances["var1"] == term]
            # a second block of the same factor is labelled "g.1" by varcorr
            rows = rows[rows["grp"].str.replace(r"\.\d+$", "", regex=True) == factor]
            sd = float(rows["sdcor"].iloc[0])
            panels.append((factor, term, table[term], sd))
    n = len(panels)
    flat = _axes_array(axes, n, ncols=min(n, 2), figsize=(7.0 if n > 1 else 5.5, 4.0 * int(np.ceil(n / 2))))
    for ax, (factor, term, values, sd) in zip(flat, panels, strict=True):
        if sd > 0:
            plot_qq(values, ax=ax, loc=0.0, scale=sd, level=level, ylabel="Conditional mode",
                    title=f"{factor}: {term}")
            ax.get_legend().get_texts()[0].set_text(f"{level:.0%} band, N(0, {_number(sd)}²)")
            ax.get_legend().get_texts()[1].set_text("reference")
        else:  # a zero variance: all modes are 0, no band to draw
            ax.scatter(_norm_ppf(_ppoints(len(values))), np.sort(values.to_numpy()), gid="points",
                       color=POOLING_COLORS["partial"])
            _finish(ax, xlabel="Normal quantiles", ylabel="Conditional mode", title=f"{factor}: {term}")
    return flat


def _norm_ppf(p: np.ndarray) -> np.ndarray:
    from scipy import stats

    return stats.norm.ppf(p)


def plot_sim_stat(simulated: Any, observed: float, *, ax: Axes | None = None, bins: int = 30,
                  xlabel: str = "Statistic", title: str | None = None) -> Axes:
    """Histogram of a statistic over simulated data sets, with the observed value marked.

    The legend gives the share of simulated values at least as large as the
    observed one (a one-sided simulation p-value; near 0 or 1 the model
    does not reproduce this feature of the data).

    Parameters
    ----------
    simulated : array-like or Series
        The statistic computed on each simulated response (e.g. on each
        column of :func:`mlmhelpers.simulate`).
    observed : float
        The statistic computed on the data.
    ax : Axes, optional
    bins : int, default 30
    xlabel, title : str, optional

    Returns
    -------
    Axes

    Notes
    -----
    R equivalent: ``hist(apply(simulate(m, 500), 2, stat)); abline(v = stat(y))``,
    as in ``DHARMa`` or ``performance::check_predictions``.

    Examples
    --------
    >>> import numpy as np
    >>> import mlmhelpers as mh
    >>> from mlmhelpers.plots import plot_sim_stat
    >>> m = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", mh.load_arrests())
    >>> sims = mh.simulate(m, nsim=100, seed=1)
    >>> ax = plot_sim_stat(sims.max(), m.design.y.max(), xlabel="Largest value")
    """
    sims = np.asarray(simulated, dtype=float).ravel()
    if sims.size < 2 or not np.all(np.isfinite(sims)):
        raise ValueError("plot_sim_stat(): simulated must hold at least 2 finite values.")
    observed = float(observed)
    if not np.isfinite(observed):
        raise ValueError(f"plot_sim_stat(): observed must be finite, got {observed!r}.")
    share = float(np.mean(sims >= observed))
    ax = _single_axes(ax, figsize=(5.5, 3.6))
    ax.hist(sims, bins=bins, color="#BDBDBD", edgecolor="white", gid="simulated",
            label=f"{sims.size:,} simulated data sets")
    ax.axvline(observed, color=POOLING_COLORS["none"], lw=2.2, gid="observed",
               label=f"observed: {_number(observed)} (share ≥ observed: {share:.3f})")
    ax.legend(loc="best", frameon=True, framealpha=0.9, edgecolor="none", fontsize=9)
    _finish(ax, xlabel=xlabel, ylabel="Number of simulations", title=title, grid="y")
    return ax
