"""Tests of mlmhelpers.plots: the structure of every figure, not only that it draws.

Each test checks what is on the Axes (points, lines, intervals, arrows, tick
order, labels) against the model's own numbers. An autouse fixture fails any
test that calls ``plt.show()`` or changes ``matplotlib.rcParams``, and closes
every figure afterwards.
"""

from __future__ import annotations

import doctest
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.colors import same_color, to_hex  # noqa: E402
from scipy import stats  # noqa: E402

import mlmhelpers as mh  # noqa: E402
from mlmhelpers import plots as P  # noqa: E402
from mlmhelpers.datasets import FACULTY_DEPARTMENTS  # noqa: E402

pytestmark = pytest.mark.filterwarnings("error::matplotlib.MatplotlibDeprecationWarning")

OKABE_ITO = {"#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"}
Y = "violent_arrest_per1000"
X = "pop_pct_pov"
LABELS = {Y: "Violent arrests per 1,000", X: "Poverty rate (%)", "stusps": "State"}


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(autouse=True)
def _figure_hygiene(monkeypatch):
    """No plt.show(), no rcParams change, no figure left open."""
    def _no_show(*args, **kwargs):
        raise AssertionError("a plotting function called plt.show()")

    monkeypatch.setattr(plt, "show", _no_show)
    plt.close("all")
    before = dict(matplotlib.rcParams.copy())
    yield
    after = dict(matplotlib.rcParams)
    changed = sorted(k for k in before if not _same(before[k], after.get(k)))
    plt.close("all")
    assert not changed, f"rcParams changed: {changed}"


def _same(a, b) -> bool:
    try:
        return bool(np.all(a == b)) if not isinstance(a, str) else a == b
    except Exception:  # noqa: BLE001 - objects without a usable ==
        return a is b


@pytest.fixture(scope="module")
def pooled(arrests):
    return mh.lm(f"{Y} ~ {X}", arrests)


@pytest.fixture(scope="module")
def fe(arrests):
    return mh.lm(f"{Y} ~ {X} + factor(stusps)", arrests)


@pytest.fixture(scope="module")
def ml(arrests):
    return mh.lmer(f"{Y} ~ {X} + (1 | stusps)", arrests)


@pytest.fixture(scope="module")
def faculty() -> pd.DataFrame:
    return mh.load_faculty()


@pytest.fixture(scope="module")
def m1(faculty):
    return mh.lmer("salary ~ experience + (1 | department)", faculty)


@pytest.fixture(scope="module")
def m3(faculty):
    return mh.lmer("salary ~ experience + (1 + experience | department)", faculty)


# ------------------------------------------------------------------------------- helpers


def by_gid(artists, gid):
    return [a for a in artists if a.get_gid() == gid]


def n_points(ax: Axes, gid: str = "points") -> int:
    return sum(len(c.get_offsets()) for c in by_gid(ax.collections, gid))


def legend_texts(legend) -> list[str]:
    return [t.get_text() for t in legend.get_texts()] if legend is not None else []


def ytick_texts(ax: Axes) -> list[str]:
    return [t.get_text() for t in ax.get_yticklabels()]


def new_figures(before: int) -> int:
    return len(plt.get_fignums()) - before


# ----------------------------------------------------------------------------- constants


def test_palettes_are_okabe_ito_and_consistent():
    assert {c.upper() for c in P.GROUP_PALETTE} == OKABE_ITO
    assert len(P.GROUP_PALETTE) == 8
    assert set(P.POOLING_COLORS) == {"complete", "none", "partial"} == set(P.POOLING_LABELS)
    assert {c.upper() for c in P.POOLING_COLORS.values()} <= OKABE_ITO
    assert len(set(P.POOLING_COLORS.values())) == 3
    assert P.POOLING_LABELS == {"complete": "Complete pooling", "none": "No pooling (fixed effects)",
                                "partial": "Partial pooling (multilevel)"}


def test_public_api_and_docstrings():
    functions = ["plot_group_lines", "plot_fit_line", "plot_distributions", "plot_group_boxplots",
                 "plot_caterpillar", "plot_intervals", "plot_intercept_distributions", "plot_shrinkage",
                 "plot_pooling_lines",
                 "plot_estimates_vs_truth", "plot_criterion_curve", "plot_profile", "plot_bootstrap"] + MODEL_CHECKING_PLOTS
    assert set(P.__all__) == set(functions) | {"GROUP_PALETTE", "POOLING_COLORS", "POOLING_LABELS"}
    for name in functions:
        doc = getattr(P, name).__doc__
        assert "Parameters" in doc and "Returns" in doc and "Examples" in doc and ">>> " in doc, name


def test_docstring_examples_run():
    """The Examples of mlmhelpers.plots run here only (tests/test_docstrings.py, which runs every
    other module's, leaves this one out instead of running it a second time): with empty
    globals, as there (every example imports what it uses), and without NORMALIZE_WHITESPACE."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(P, P.__name__, globs={}):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted >= 10
    assert result.failed == 0


# ------------------------------------------------------------------------ plot_group_lines


def test_group_lines_lmer_few_groups(m3, faculty):
    before = len(plt.get_fignums())
    ax = P.plot_group_lines(m3, faculty, "experience")
    assert isinstance(ax, Axes) and new_figures(before) == 1
    levels = list(m3.design.levels)
    points = by_gid(ax.collections, "points")
    assert len(points) == len(levels)  # one coloured scatter per group
    assert n_points(ax) == len(faculty)
    lines = by_gid(ax.lines, "group-line")
    assert [ln.get_label() for ln in lines] == levels
    for i, (level, line, pts) in enumerate(zip(levels, lines, points, strict=True)):
        sub = faculty[faculty.department == level]
        assert same_color(line.get_color(), P.GROUP_PALETTE[i])
        assert same_color(pts.get_facecolor()[0][:3], P.GROUP_PALETTE[i])
        assert len(pts.get_offsets()) == len(sub)
        xs, ys = line.get_xdata(), line.get_ydata()
        assert xs.min() == sub.experience.min() and xs.max() == sub.experience.max()
        expected = m3.predict(pd.DataFrame({"experience": xs, "department": level}))
        np.testing.assert_allclose(ys, expected.to_numpy(), rtol=1e-12)
    legend = ax.get_legend()
    assert legend_texts(legend) == levels and legend.get_title().get_text() == "department"
    assert ax.get_xlabel() == "experience" and ax.get_ylabel() == "salary"


def test_group_lines_lm_many_groups_with_pooled(fe, pooled, arrests):
    ax = P.plot_group_lines(fe, arrests, X, pooled=pooled, labels=LABELS)  # group inferred from factor(stusps)
    points = by_gid(ax.collections, "points")
    assert len(points) == 1 and len(points[0].get_offsets()) == len(arrests)
    assert to_hex(points[0].get_facecolor()[0][:3]) not in {c.lower() for c in OKABE_ITO}  # grey
    lines = by_gid(ax.lines, "group-line")
    assert len(lines) == arrests.stusps.nunique() == 51
    assert all(ln.get_alpha() < 1 for ln in lines)
    assert {to_hex(ln.get_color()) for ln in lines} == {c.lower() for c in P.GROUP_PALETTE}
    gi = mh.group_intercepts(fe, "stusps")
    slope = fe.coef[X]
    for ln in lines:  # each line is that state's no-pooling line
        np.testing.assert_allclose(ln.get_ydata(), gi.loc[ln.get_label(), "estimate"] + slope * ln.get_xdata())
    (pl,) = by_gid(ax.lines, "pooled-line")
    assert pl.get_linestyle() == "--" and same_color(pl.get_color(), P.POOLING_COLORS["complete"])
    np.testing.assert_allclose(pl.get_ydata(), pooled.coef["(Intercept)"] + pooled.coef[X] * pl.get_xdata())
    assert pl.get_xdata().min() == arrests[X].min() and pl.get_xdata().max() == arrests[X].max()
    assert legend_texts(ax.get_legend()) == [P.POOLING_LABELS["complete"]]  # no 51-entry legend
    assert ax.get_xlabel() == LABELS[X] and ax.get_ylabel() == LABELS[Y]


def test_group_lines_subset_and_given_ax(ml, arrests):
    fig, ax0 = plt.subplots()
    before = len(plt.get_fignums())
    ax = P.plot_group_lines(ml, arrests, X, groups=["TX", "CA", "DC"], ax=ax0)
    assert ax is ax0 and new_figures(before) == 0
    assert [ln.get_label() for ln in by_gid(ax.lines, "group-line")] == ["TX", "CA", "DC"]
    assert n_points(ax) == int(arrests.stusps.isin(["TX", "CA", "DC"]).sum())
    assert legend_texts(ax.get_legend()) == ["TX", "CA", "DC"]
    assert ax.get_legend().get_title().get_text() == "stusps"


def test_group_lines_errors(m3, faculty, fe, pooled, arrests, ml):
    with pytest.raises(TypeError, match="LmerResult.*LmResult"):
        P.plot_group_lines("not a model", faculty, "experience")
    with pytest.raises(ValueError, match=r"'years' not in data; available columns: department"):
        P.plot_group_lines(m3, faculty, "years")
    with pytest.raises(ValueError, match=r"Unknown level\(s\) 'chemistry'.*valid levels: biology, english"):
        P.plot_group_lines(m3, faculty, "experience", groups=["biology", "chemistry"])
    with pytest.raises(ValueError, match="no factor"):
        P.plot_group_lines(pooled, arrests, X)
    with pytest.raises(ValueError, match=r"no factor\(year\) term"):
        P.plot_group_lines(fe, arrests, X, group="year")
    with pytest.raises(TypeError, match="pooled to be an LmResult"):
        P.plot_group_lines(fe, arrests, X, pooled=ml)
    with pytest.raises(ValueError, match="grouping factor is 'stusps', not 'year'"):
        P.plot_group_lines(ml, arrests, X, group="year")
    with pytest.raises(TypeError, match="DataFrame"):
        P.plot_group_lines(ml, arrests.to_dict(), X)
    with pytest.raises(ValueError, match="must be numeric"):
        P.plot_group_lines(ml, arrests, "stusps")
    with pytest.raises(TypeError, match="labels must be a mapping"):
        P.plot_group_lines(ml, arrests, X, labels=["a"])


# --------------------------------------------------------------------------- plot_fit_line


def test_fit_line(pooled, arrests):
    ax = P.plot_fit_line(pooled, arrests, X, labels={Y: "Violent arrests per 1,000"})
    assert n_points(ax) == len(arrests)
    (line,) = ax.lines
    assert same_color(line.get_color(), P.POOLING_COLORS["complete"])
    np.testing.assert_allclose(line.get_ydata(), pooled.coef["(Intercept)"] + pooled.coef[X] * line.get_xdata())
    assert line.get_xdata()[0] == arrests[X].min() and line.get_xdata()[-1] == arrests[X].max()
    assert ax.get_xlabel() == X and ax.get_ylabel() == "Violent arrests per 1,000"
    assert legend_texts(ax.get_legend()) == ["Complete pooling"]


def test_fit_line_lmer_is_population_line(ml, arrests):
    ax = P.plot_fit_line(ml, arrests, X)
    (line,) = ax.lines
    assert same_color(line.get_color(), P.POOLING_COLORS["partial"])
    np.testing.assert_allclose(line.get_ydata(), ml.fixef["(Intercept)"] + ml.fixef[X] * line.get_xdata())


def test_fit_line_errors(fe, arrests):
    with pytest.raises(ValueError, match="use plot_group_lines"):
        P.plot_fit_line(fe, arrests, X)
    with pytest.raises(TypeError, match="LmResult"):
        P.plot_fit_line(None, arrests, X)
    with pytest.raises(ValueError, match="'poverty' not in data"):
        P.plot_fit_line(mh.lm(f"{Y} ~ {X}", arrests), arrests, "poverty")


# ---------------------------------------------------------------------- plot_distributions


def test_distributions(arrests):
    before = len(plt.get_fignums())
    axes = P.plot_distributions(arrests, Y, X, labels=LABELS)
    assert isinstance(axes, np.ndarray) and axes.shape == (3,) and new_figures(before) == 1
    assert all(isinstance(a, Axes) for a in axes) and len({a.figure for a in axes}) == 1
    for ax in axes[:2]:  # histograms count every row
        assert sum(p.get_height() for p in ax.patches) == len(arrests)
        assert ax.get_ylabel() == "Count"
    assert [a.get_xlabel() for a in axes] == [LABELS[Y], LABELS[X], LABELS[X]]
    assert axes[2].get_ylabel() == LABELS[Y]
    assert n_points(axes[2]) == len(arrests)
    np.testing.assert_array_equal(by_gid(axes[2].collections, "points")[0].get_offsets(), arrests[[X, Y]].to_numpy())


def test_distributions_given_axes_and_errors(arrests):
    fig, axs = plt.subplots(2, 2)
    out = P.plot_distributions(arrests, Y, X, axes=axs)
    assert list(out) == list(axs.ravel()[:3])
    with pytest.raises(ValueError, match="needs 3 Axes, got 2"):
        P.plot_distributions(arrests, Y, X, axes=axs.ravel()[:2])
    with pytest.raises(ValueError, match="'crime' not in data"):
        P.plot_distributions(arrests, "crime", X)


# --------------------------------------------------------------------- plot_group_boxplots


def test_group_boxplots_ordered_by_median(arrests):
    ax = P.plot_group_boxplots(arrests, Y, "stusps", labels={"stusps": "State"})
    medians = arrests.groupby("stusps")[Y].median().sort_values(kind="stable")
    assert len(by_gid(ax.patches, "box")) == 51
    assert [t.get_text() for t in ax.get_xticklabels()] == list(medians.index)
    drawn = [ln.get_ydata()[0] for ln in by_gid(ax.lines, "median")]
    np.testing.assert_allclose(drawn, medians.to_numpy())
    assert np.all(np.diff(drawn) >= 0)
    assert ax.get_xlabel() == "State" and ax.get_ylabel() == Y
    assert all(t.get_fontsize() <= 8 for t in ax.get_xticklabels())  # 51 labels stay legible


def test_group_boxplots_errors(arrests):
    with pytest.raises(ValueError, match="'state' not in data"):
        P.plot_group_boxplots(arrests, Y, "state")
    with pytest.raises(ValueError, match="'stusps' must be numeric"):
        P.plot_group_boxplots(arrests, "stusps", "year")


# ------------------------------------------------------------------------ plot_caterpillar


def test_caterpillar_lmer_matches_model(ml):
    before = len(plt.get_fignums())
    ax = P.plot_caterpillar(ml, labels={"stusps": "State"})
    assert new_figures(before) == 1
    est = ml.coef["(Intercept)"]
    se = ml.se_ranef["(Intercept)"]
    order = est.sort_values(kind="stable").index
    assert ytick_texts(ax) == list(order)  # lowest estimate at the bottom
    np.testing.assert_array_equal(ax.get_yticks(), np.arange(51))
    (points,) = by_gid(ax.lines, "estimates")
    np.testing.assert_allclose(points.get_xdata(), est[order].to_numpy(), rtol=0, atol=1e-9)
    (bars,) = by_gid(ax.collections, "intervals")
    seg = np.asarray(bars.get_segments())
    np.testing.assert_allclose(seg[:, 0, 0], (est - 2 * se)[order].to_numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(seg[:, 1, 0], (est + 2 * se)[order].to_numpy(), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(seg[:, 0, 1], np.arange(51))
    (ref,) = by_gid(ax.lines, "reference")
    assert ref.get_xdata()[0] == pytest.approx(ml.fixef["(Intercept)"])
    assert ax.get_ylabel() == "State" and ax.get_xlabel() == "(Intercept) ± 2 SE"
    assert ax.figure.get_size_inches()[1] >= 0.15 * 51  # tall enough for 51 labels
    assert all(t.get_fontsize() <= 8 for t in ax.get_yticklabels())


def test_caterpillar_slope_term_and_k(m3):
    ax = P.plot_caterpillar(m3, term="experience", k=1.5, xlabel="Annual raise ($)")
    est, se = m3.coef["experience"], m3.se_ranef["experience"]
    order = est.sort_values().index
    assert ytick_texts(ax) == list(order)
    seg = np.asarray(by_gid(ax.collections, "intervals")[0].get_segments())
    np.testing.assert_allclose(seg[:, 1, 0] - seg[:, 0, 0], 3.0 * se[order].to_numpy(), rtol=0, atol=1e-9)
    assert ax.get_xlabel() == "Annual raise ($)"


def test_caterpillar_table_input(fe, m1):
    gi = mh.group_intercepts(fe, "stusps")
    ax = P.plot_caterpillar(gi, color=P.POOLING_COLORS["none"])
    order = gi.estimate.sort_values(kind="stable").index
    assert ytick_texts(ax) == list(order)
    seg = np.asarray(by_gid(ax.collections, "intervals")[0].get_segments())
    np.testing.assert_allclose(seg[:, 0, 0], (gi.estimate - 2 * gi.std_error)[order], rtol=0, atol=1e-9)
    assert not by_gid(ax.lines, "reference") and ax.get_ylabel() == "stusps"
    ci = mh.coef_intervals(m1)  # lecture A's interval table
    ax2 = P.plot_caterpillar(ci, ax=plt.subplots()[1])
    seg2 = np.asarray(by_gid(ax2.collections, "intervals")[0].get_segments())
    order2 = ci.estimate.sort_values().index
    np.testing.assert_allclose(seg2[:, 0, 0], ci.lower[order2], rtol=0, atol=1e-9)
    np.testing.assert_allclose(seg2[:, 1, 0], ci.upper[order2], rtol=0, atol=1e-9)


def test_caterpillar_errors(ml, fe):
    with pytest.raises(ValueError, match=r"'slope' is not a random-effect term.*valid terms: \(Intercept\)"):
        P.plot_caterpillar(ml, term="slope")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['std_error'\]"):
        P.plot_caterpillar(pd.DataFrame({"estimate": [1.0, 2.0]}))
    with pytest.raises(TypeError, match="LmerResult.*DataFrame"):
        P.plot_caterpillar(fe)
    with pytest.raises(ValueError, match="k must be a positive number"):
        P.plot_caterpillar(ml, k=-1)
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        P.plot_caterpillar(ml, ax="left")


# ------------------------------------------------------------ plot_intercept_distributions


def test_intercept_distributions(fe, ml):
    axes = P.plot_intercept_distributions(fe, ml, xlabel="State intercept")
    assert isinstance(axes, np.ndarray) and len(axes) == 2
    assert axes[0].get_xlim() == axes[1].get_xlim()
    gi = mh.group_intercepts(fe, "stusps").estimate
    lo, hi = axes[0].get_xlim()
    assert lo < gi.min() and hi > gi.max()
    left = by_gid(axes[0].patches, "no-pooling-hist")
    assert len(left) > 0 and all(same_color(p.get_facecolor()[:3], P.POOLING_COLORS["none"]) for p in left)
    area = sum(p.get_height() * p.get_width() for p in left)
    assert area == pytest.approx(1.0)  # a density
    counts = [p.get_height() * p.get_width() * len(gi) for p in left]
    assert sum(counts) == pytest.approx(len(gi))
    (curve,) = by_gid(axes[1].lines, "normal-density")
    mu, sd = ml.fixef["(Intercept)"], np.sqrt(ml.varcorr.vcov.iloc[0])
    np.testing.assert_allclose(curve.get_ydata(), stats.norm.pdf(curve.get_xdata(), mu, sd), rtol=1e-12)
    assert same_color(curve.get_color(), P.POOLING_COLORS["partial"])
    (rug,) = by_gid(axes[1].lines, "rug")
    np.testing.assert_allclose(np.sort(rug.get_xdata()), np.sort(ml.coef["(Intercept)"].to_numpy()))
    assert [a.get_title() for a in axes] == [P.POOLING_LABELS["none"], P.POOLING_LABELS["partial"]]
    assert [a.get_xlabel() for a in axes] == ["State intercept"] * 2


def test_intercept_distributions_errors(fe, ml, m3, pooled):
    with pytest.raises(TypeError, match="no_pooling to be an LmResult"):
        P.plot_intercept_distributions(ml, ml)
    with pytest.raises(TypeError, match="multilevel to be an LmerResult"):
        P.plot_intercept_distributions(fe, fe)
    with pytest.raises(ValueError, match="random-intercept model"):
        P.plot_intercept_distributions(fe, m3)
    with pytest.raises(ValueError, match=r"no factor\(stusps\) term"):
        P.plot_intercept_distributions(pooled, ml)


# -------------------------------------------------------------------------- plot_shrinkage


def test_shrinkage_arrows_match_table(fe, ml):
    before = len(plt.get_fignums())
    axes = P.plot_shrinkage(fe, ml, labels={"stusps": "State"})
    assert isinstance(axes, np.ndarray) and len(axes) == 2 and new_figures(before) == 1
    table = mh.shrinkage_table(fe, ml).sort_values("no_pooling", kind="stable")
    left, right = axes
    arrows = by_gid(left.texts, "shrinkage-arrow")
    assert len(arrows) == len(table) == 51
    starts = np.array([a.xyann for a in arrows])  # (x, y) of the tail
    ends = np.array([a.xy for a in arrows])  # (x, y) of the head
    np.testing.assert_allclose(starts[:, 0], table.no_pooling.to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ends[:, 0], table.partial_pooling.to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(starts[:, 1], np.arange(51))
    np.testing.assert_array_equal(ends[:, 1], np.arange(51))
    # Small groups' arrows point toward the overall mean. (Not every arrow must: the
    # slope also differs between the two fits, so large groups can move slightly away.)
    overall = ml.fixef["(Intercept)"]
    small = table.n.to_numpy() < 10
    assert np.all(np.abs(ends[small, 0] - overall) < np.abs(starts[small, 0] - overall))
    assert [t.split(" ")[0] for t in ytick_texts(left)] == list(table.index)
    assert ytick_texts(left)[list(table.index).index("DC")] == "DC (n=2)"
    (mean_line,) = by_gid(left.lines, "overall-mean")
    assert mean_line.get_xdata()[0] == pytest.approx(overall)
    assert same_color(mean_line.get_color(), P.POOLING_COLORS["complete"])
    (nop,) = by_gid(left.collections, "no-pooling")
    (part,) = by_gid(left.collections, "partial-pooling")
    np.testing.assert_allclose(nop.get_offsets()[:, 0], table.no_pooling.to_numpy())
    np.testing.assert_allclose(part.get_offsets()[:, 0], table.partial_pooling.to_numpy())
    assert same_color(nop.get_edgecolor()[0][:3], P.POOLING_COLORS["none"])
    assert same_color(part.get_facecolor()[0][:3], P.POOLING_COLORS["partial"])
    sizes = nop.get_sizes()
    big = table.n.to_numpy() >= 20  # above the visibility floor, area ∝ n exactly
    np.testing.assert_allclose(sizes[big] / table.n.to_numpy()[big], sizes[big][0] / table.n.to_numpy()[big][0])
    assert left.get_ylabel() == "State"
    # Right panel: shrinkage 1 - w against n on a log axis.
    (pts,) = by_gid(right.collections, "shrinkage-points")
    np.testing.assert_allclose(pts.get_offsets()[:, 0], table.n.to_numpy())
    np.testing.assert_allclose(pts.get_offsets()[:, 1], 1 - table.shrinkage_factor.to_numpy())
    assert right.get_xscale() == "log"
    assert "n" in right.get_xlabel() and "1 − w" in right.get_ylabel()
    labelled = {t.get_text() for t in by_gid(right.texts, "point-label")}
    assert "DC" in labelled  # the smallest group, the most shrunk, is named


def test_shrinkage_shift_measure_and_errors(fe, ml, m3):
    axes = P.plot_shrinkage(fe, ml, measure="shift")
    table = mh.shrinkage_table(fe, ml).sort_values("no_pooling", kind="stable")
    (pts,) = by_gid(axes[1].collections, "shrinkage-points")
    np.testing.assert_allclose(pts.get_offsets()[:, 1], np.abs(table["shift"].to_numpy()))
    with pytest.raises(ValueError, match="measure must be 'factor' or 'shift'"):
        P.plot_shrinkage(fe, ml, measure="weight")
    with pytest.raises(ValueError, match="random-intercept model"):
        P.plot_shrinkage(fe, m3)
    with pytest.raises(TypeError, match="no_pooling to be an LmResult"):
        P.plot_shrinkage(ml, ml)
    with pytest.raises(ValueError, match="needs 2 Axes, got 1"):
        P.plot_shrinkage(fe, ml, axes=[plt.subplots()[1]])


# ---------------------------------------------------------------------- plot_pooling_lines


def test_pooling_lines(arrests, pooled, fe, ml):
    groups = ["DC", "DE", "TX", "CA"]
    before = len(plt.get_fignums())
    axes = P.plot_pooling_lines(arrests, X, complete=pooled, no_pooling=fe, partial=ml, groups=groups,
                                ncols=2, labels=LABELS)
    assert new_figures(before) == 1
    assert isinstance(axes, np.ndarray) and len(axes) == len(groups)
    gi = mh.group_intercepts(fe, "stusps").estimate
    for ax, g in zip(axes, groups, strict=True):
        n = int((arrests.stusps == g).sum())
        assert n_points(ax) == n and ax.get_title() == f"{g} (n = {n})"
        lines = {ln.get_gid(): ln for ln in ax.lines}
        assert set(lines) == {"complete-line", "none-line", "partial-line"}
        for kind in ("complete", "none", "partial"):
            assert same_color(lines[f"{kind}-line"].get_color(), P.POOLING_COLORS[kind])
        xs = lines["partial-line"].get_xdata()
        np.testing.assert_allclose(lines["partial-line"].get_ydata(),
                                   ml.coef.loc[g, "(Intercept)"] + ml.fixef[X] * xs)
        np.testing.assert_allclose(lines["none-line"].get_ydata(), gi[g] + fe.coef[X] * xs)
        np.testing.assert_allclose(lines["complete-line"].get_ydata(),
                                   pooled.coef["(Intercept)"] + pooled.coef[X] * xs)
    fig = axes[0].figure
    assert len(fig.axes) == len(groups)  # no empty panels left over
    assert legend_texts(fig.legends[0]) == list(P.POOLING_LABELS.values())
    assert axes[2].get_xlabel() == LABELS[X] and axes[0].get_ylabel() == LABELS[Y]


def test_pooling_lines_errors(arrests, pooled, fe, ml):
    kw = {"complete": pooled, "no_pooling": fe, "partial": ml}
    with pytest.raises(ValueError, match=r"Unknown level\(s\) 'XX' of 'stusps'; valid levels: AK, AL"):
        P.plot_pooling_lines(arrests, X, groups=["CA", "XX"], **kw)
    with pytest.raises(TypeError, match="partial to be an LmerResult"):
        P.plot_pooling_lines(arrests, X, groups=["CA"], complete=pooled, no_pooling=fe, partial=fe)
    with pytest.raises(TypeError, match="complete to be an LmResult"):
        P.plot_pooling_lines(arrests, X, groups=["CA"], complete=ml, no_pooling=fe, partial=ml)
    with pytest.raises(ValueError, match="needs 3 Axes, got 2"):
        P.plot_pooling_lines(arrests, X, groups=["CA", "TX", "NY"], axes=plt.subplots(1, 2)[1], **kw)
    with pytest.raises(ValueError, match="ncols must be a positive integer"):
        P.plot_pooling_lines(arrests, X, groups=["CA"], ncols=0, **kw)


# ----------------------------------------------------------------- plot_estimates_vs_truth


def test_estimates_vs_truth(m3):
    truth = pd.Series({d: base for d, (base, _) in FACULTY_DEPARTMENTS.items()})
    ci = mh.coef_intervals(m3)
    ax = P.plot_estimates_vs_truth(ci, truth, labels={"truth": "True base salary ($)"})
    (pts,) = by_gid(ax.lines, "estimates")
    np.testing.assert_allclose(pts.get_xdata(), truth[ci.index].to_numpy())
    np.testing.assert_allclose(pts.get_ydata(), ci.estimate.to_numpy())
    seg = np.asarray(by_gid(ax.collections, "intervals")[0].get_segments())
    np.testing.assert_allclose(seg[:, 0, 1], ci.lower.to_numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(seg[:, 1, 1], ci.upper.to_numpy(), rtol=0, atol=1e-9)
    (identity,) = by_gid(ax.lines, "identity")
    np.testing.assert_array_equal(identity.get_xdata(), identity.get_ydata())
    assert ax.get_xlim() == ax.get_ylim()
    assert ax.get_xlabel() == "True base salary ($)" and ax.get_ylabel() == "Estimate"
    assert {t.get_text() for t in ax.texts} == set(truth.index)  # departments are named


def test_estimates_vs_truth_series_and_errors(m3):
    truth = pd.Series({d: r for d, (_, r) in FACULTY_DEPARTMENTS.items()})
    ax = P.plot_estimates_vs_truth(m3.coef["experience"], truth)
    assert not by_gid(ax.collections, "intervals")
    np.testing.assert_allclose(by_gid(ax.lines, "estimates")[0].get_ydata(), m3.coef["experience"].to_numpy())
    with pytest.raises(ValueError, match="no true value for group"):
        P.plot_estimates_vs_truth(m3.coef["experience"], truth.drop("english"))
    with pytest.raises(TypeError, match="truth to be a pandas Series"):
        P.plot_estimates_vs_truth(m3.coef["experience"], truth.to_dict())
    with pytest.raises(TypeError, match="Series or DataFrame"):
        P.plot_estimates_vs_truth([1, 2], truth)
    with pytest.raises(ValueError, match="'estimate' column"):
        P.plot_estimates_vs_truth(m3.coef, truth)


# -------------------------------------------------------------------- plot_criterion_curve


def test_criterion_curve_marks_optimum(ml):
    ax = P.plot_criterion_curve(ml)
    theta = float(ml.sol.theta[0])
    (opt,) = by_gid(ax.lines, "optimum")
    assert opt.get_xdata()[0] == theta
    assert opt.get_ydata()[0] == pytest.approx(ml.reml_criterion, abs=1e-6)
    (curve,) = by_gid(ax.lines, "criterion")
    xs, ys = curve.get_xdata(), curve.get_ydata()
    assert theta in xs and xs[0] == 0 and np.all(np.diff(xs) > 0)
    assert xs[np.argmin(ys)] == theta  # the marked point is the minimum of the curve
    assert ys[0] == pytest.approx(ml.criterion(0.0))
    assert ax.get_ylabel() == "REML criterion" and "θ" in ax.get_xlabel() or "theta" in ax.get_xlabel()


def test_criterion_curve_ml_fit_and_grid(faculty):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mh.lmer("salary ~ experience + (1 | department)", faculty, REML=False)
    ax = P.plot_criterion_curve(m, grid=[0.5, 1, 2, 8])
    curve = by_gid(ax.lines, "criterion")[0]
    np.testing.assert_allclose(curve.get_xdata(), np.sort([0.5, 1, 2, 8, m.sol.theta[0]]))
    assert by_gid(ax.lines, "optimum")[0].get_ydata()[0] == pytest.approx(m.deviance, abs=1e-6)
    assert ax.get_ylabel().startswith("Deviance")


def test_criterion_curve_errors(m3, ml, fe):
    with pytest.raises(ValueError, match="one θ parameter.*has 3"):
        P.plot_criterion_curve(m3)
    with pytest.raises(TypeError, match="LmerResult"):
        P.plot_criterion_curve(fe)
    with pytest.raises(ValueError, match="grid must hold"):
        P.plot_criterion_curve(ml, grid=[-1, 1])


# ------------------------------------------------------------------- every function, once


def test_every_function_returns_axes_and_creates_one_figure(arrests, pooled, fe, ml, faculty, m3):
    truth = pd.Series({d: b for d, (b, _) in FACULTY_DEPARTMENTS.items()})
    calls = [
        lambda: P.plot_group_lines(m3, faculty, "experience"),
        lambda: P.plot_fit_line(pooled, arrests, X),
        lambda: P.plot_distributions(arrests, Y, X),
        lambda: P.plot_group_boxplots(arrests, Y, "stusps"),
        lambda: P.plot_caterpillar(ml),
        lambda: P.plot_intercept_distributions(fe, ml),
        lambda: P.plot_shrinkage(fe, ml),
        lambda: P.plot_pooling_lines(arrests, X, complete=pooled, no_pooling=fe, partial=ml, groups=["CA"]),
        lambda: P.plot_estimates_vs_truth(m3.coef["(Intercept)"], truth),
        lambda: P.plot_criterion_curve(ml),
    ]
    for call in calls:
        before = len(plt.get_fignums())
        out = call()
        assert new_figures(before) == 1
        flat = np.asarray(out, dtype=object).ravel()
        assert all(isinstance(a, Axes) for a in flat)
        fig = flat[0].figure
        width = fig.get_size_inches()[0]
        assert 4.5 <= width <= 9  # at most about a book column
        fig.canvas.draw()  # renders without errors or warnings
        plt.close(fig)


# ----------------------------------------------------------------------------- plot_intervals
def test_plot_intervals_draws_asymmetric_rows_in_table_order():
    from mlmhelpers.plots import plot_intervals

    tab = pd.DataFrame({"fit": [1.0, 5.0, 3.0], "lower": [0.0, 4.5, 1.0], "upper": [4.0, 5.2, 3.5]},
                       index=pd.Index(["a", "b", "c"], name="state"))
    ax = plot_intervals(tab, xlabel="Prediction", ref=2.0)
    # Top row first: the y ticks read the table from the bottom up.
    assert [t.get_text() for t in ax.get_yticklabels()] == ["c", "b", "a"]
    segs = next(c for c in ax.collections if c.get_gid() == "intervals").get_segments()
    ends = sorted((float(sg[0][0]), float(sg[1][0])) for sg in segs)
    assert ends == [(0.0, 4.0), (1.0, 3.5), (4.5, 5.2)]
    assert ax.get_xlabel() == "Prediction" and ax.get_ylabel() == "state"
    ax2 = plot_intervals(tab, sort=True)
    assert [t.get_text() for t in ax2.get_yticklabels()] == ["a", "c", "b"]


def test_plot_intervals_from_predict_interval():
    from mlmhelpers.plots import plot_intervals

    m = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", mh.load_arrests())
    new = pd.DataFrame({"pop_pct_pov": 15.0, "stusps": ["TX", "DC", "ZZ"]}, index=["TX", "DC", "ZZ"])
    tab = mh.predict_interval(m, new, allow_new_levels=True, n_sims=500)
    ax = plot_intervals(tab)
    pts = next(line for line in ax.get_lines() if line.get_gid() == "estimates")
    np.testing.assert_allclose(sorted(pts.get_xdata()), sorted(tab.fit))


def test_plot_intervals_errors():
    from mlmhelpers.plots import plot_intervals

    with pytest.raises(TypeError, match="DataFrame"):
        plot_intervals([1, 2])
    bad = pd.DataFrame({"fit": [1.0], "lower": [2.0], "upper": [3.0]})
    with pytest.raises(ValueError, match="lower <= fit <= upper"):
        plot_intervals(bad)
    with pytest.raises(ValueError, match="upper"):
        plot_intervals(pd.DataFrame({"fit": [1.0], "lower": [0.0]}))


def test_group_lines_for_a_model_that_ignores_the_groups():
    f = mh.load_faculty()
    pooled = mh.lm("salary ~ experience", f)
    ax = P.plot_group_lines(pooled, f, "experience", group="department")
    lines = [ln for ln in ax.get_lines() if ln.get_gid() == "group-line"]
    assert len(lines) == 5
    b = pooled.coef
    for ln in lines:  # every department's line is the one pooled line, over its own x-range
        np.testing.assert_allclose(ln.get_ydata(), b["(Intercept)"] + b["experience"] * ln.get_xdata())
    with pytest.raises(ValueError, match="no factor\\(g\\) or C\\(g\\) term"):
        P.plot_group_lines(pooled, f, "experience")


# =============================================================================== Uncertainty
# plot_profile and plot_bootstrap (chapter 9).

@pytest.fixture(scope="module")
def faculty_ri():
    return mh.lmer("salary ~ experience + (1 | department)", mh.load_faculty())


def test_plot_profile_draws_the_profile_and_its_interval(faculty_ri):
    pr = mh.profile(faculty_ri, which=[".sig01"])
    se = 5000.0
    ax = P.plot_profile(pr, ".sig01", wald_se=se)
    by_gid = {ln.get_gid(): ln for ln in ax.get_lines() if ln.get_gid()}
    pts = pr.table[pr.table[".par"] == ".sig01"].sort_values("value")
    np.testing.assert_allclose(by_gid["profile"].get_xdata(), pts["value"])
    np.testing.assert_allclose(by_gid["profile"].get_ydata(), pts[".zeta"])
    ci = pr.confint().loc[".sig01"]
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(by_gid["interval"].get_xdata(), [ci["lower"], ci["upper"]])
    np.testing.assert_allclose(by_gid["interval"].get_ydata(), [-z, z])
    est = pr.estimates[".sig01"]
    np.testing.assert_allclose(by_gid["estimate"].get_xdata(), [est])
    wx, wy = by_gid["wald"].get_xdata(), by_gid["wald"].get_ydata()
    np.testing.assert_allclose(wy, (wx - est) / se)  # the straight line of a Wald interval
    ax90 = P.plot_profile(pr, ".sig01", level=0.9)
    ends = next(ln for ln in ax90.get_lines() if ln.get_gid() == "interval")
    np.testing.assert_allclose(ends.get_xdata(), pr.confint(0.9).loc[".sig01"].to_numpy())
    assert not any(ln.get_gid() == "wald" for ln in ax90.get_lines())


def test_plot_profile_errors(faculty_ri):
    pr = mh.profile(faculty_ri, which=[".sig01"])
    with pytest.raises(TypeError, match="Profile"):
        P.plot_profile(pr.table, ".sig01")
    with pytest.raises(ValueError, match="profiled parameters: .sig01"):
        P.plot_profile(pr, ".sigma")
    with pytest.raises(ValueError, match="level"):
        P.plot_profile(pr, ".sig01", level=95)
    with pytest.raises(ValueError, match="wald_se"):
        P.plot_profile(pr, ".sig01", wald_se=-1.0)


def test_plot_bootstrap_histogram_estimate_and_interval(faculty_ri):
    from mlmhelpers.bootstrap import boot_intervals

    b = mh.bootstrap(faculty_ri, lambda fit: pd.Series({"ICC": mh.icc(fit)}), nsim=40, seed=3)
    ax = P.plot_bootstrap(b)
    heights = [p.get_height() for p in ax.patches if p.get_gid() == "replicates"]
    assert len(heights) == 30 and sum(heights) == 40  # every replicate in one of the 30 bins
    est = next(ln for ln in ax.get_lines() if ln.get_gid() == "estimate")
    np.testing.assert_allclose(est.get_xdata()[0], mh.icc(faculty_ri))
    span = next(p for p in ax.patches if p.get_gid() == "interval")
    xs = np.array([span.get_x(), span.get_x() + span.get_width()])  # axvspan: a Rectangle
    ci = boot_intervals(b).loc["ICC"]
    np.testing.assert_allclose([xs.min(), xs.max()], [ci["lower"], ci["upper"]])
    assert ax.get_ylabel() == "Number of replicates"
    # no interval, an explicit estimate, a column of a multi-column result
    b2 = pd.DataFrame({"a": np.arange(10.0), "b": np.ones(10)})
    ax2 = P.plot_bootstrap(b2, "a", level=None, t0=4.5, t0_label="observed")
    assert not any(p.get_gid() == "interval" for p in ax2.patches)
    line = next(ln for ln in ax2.get_lines() if ln.get_gid() == "estimate")
    assert line.get_xdata()[0] == 4.5 and line.get_label() == "observed: 4.5"


def test_plot_bootstrap_errors():
    with pytest.raises(TypeError, match="DataFrame"):
        P.plot_bootstrap(np.arange(5.0))
    two = pd.DataFrame({"a": np.arange(5.0), "b": np.arange(5.0)})
    with pytest.raises(ValueError, match="pass column= one of a, b"):
        P.plot_bootstrap(two)
    with pytest.raises(ValueError, match="no column 'c'"):
        P.plot_bootstrap(two, "c")
    with pytest.raises(ValueError, match="fewer than two"):
        P.plot_bootstrap(pd.DataFrame({"a": [1.0, np.nan]}))
# ==================================================================================
# Model checking: qq_table, plot_qq, plot_residuals, plot_ranef_qq, plot_sim_stat
# ==================================================================================

MODEL_CHECKING_PLOTS = ["qq_table", "plot_qq", "plot_residuals", "plot_ranef_qq", "plot_sim_stat"]


@pytest.fixture(scope="module")
def county_model(arrests):
    d = arrests.assign(county=arrests.stusps + "-" + arrests.fips.astype(str))
    return mh.lmer(f"{Y} ~ {X} + (1 | stusps/county)", d)


def test_model_checking_functions_return_axes_and_one_figure(ml, county_model):
    calls = [
        lambda: P.plot_qq(ml.residuals(scaled=True)),
        lambda: P.plot_residuals(ml),
        lambda: P.plot_residuals(ml, X, labels=LABELS),
        lambda: P.plot_ranef_qq(county_model),
        lambda: P.plot_sim_stat([1.0, 2.0, 3.0], 2.5),
    ]
    for call in calls:
        before = len(plt.get_fignums())
        out = call()
        assert new_figures(before) == 1
        flat = np.asarray(out, dtype=object).ravel()
        assert all(isinstance(a, Axes) for a in flat)
        assert 4.5 <= flat[0].figure.get_size_inches()[0] <= 9
        flat[0].figure.canvas.draw()
        plt.close(flat[0].figure)
    fig, ax = plt.subplots()
    assert P.plot_qq(np.arange(5.0), ax=ax) is ax
    assert P.plot_residuals(ml, ax=ax) is ax
    assert P.plot_sim_stat([1.0, 2.0], 1.5, ax=ax) is ax


def test_qq_table_band_is_the_order_statistic_band():
    x = np.random.default_rng(3).standard_normal(50)
    t = P.qq_table(x, loc=1.0, scale=2.0, level=0.9)
    assert np.all(np.diff(t["sample"].to_numpy()) >= 0)
    np.testing.assert_allclose(t["sample"], np.sort(x))
    n, i = 50, np.arange(1, 51)
    np.testing.assert_allclose(t["theoretical"], stats.norm.ppf((i - 0.5) / n))  # R's ppoints, n > 10
    np.testing.assert_allclose(t["reference"], 1.0 + 2.0 * t["theoretical"])
    # P(U_(i) <= F(lower)) = P(Binom(n, F(lower)) >= i) = 0.05 at the lower edge, 0.95 at the upper
    for col, target in [("lower", 0.05), ("upper", 0.95)]:
        p = stats.norm.cdf((t[col].to_numpy() - 1.0) / 2.0)
        np.testing.assert_allclose(stats.binom.sf(i - 1, n, p), target, atol=1e-8)
    np.testing.assert_array_equal(t["outside"], (t["sample"] < t["lower"]) | (t["sample"] > t["upper"]))
    est = P.qq_table(x, loc=None, scale=None)
    np.testing.assert_allclose(est["reference"], x.mean() + x.std(ddof=1) * est["theoretical"])
    np.testing.assert_allclose(P.qq_table(x[:8])["theoretical"],
                               stats.norm.ppf((np.arange(1, 9) - 3 / 8) / (8 + 1 - 3 / 4)))


def test_qq_table_errors():
    with pytest.raises(ValueError, match="at least 3 finite"):
        P.qq_table([1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match="level"):
        P.qq_table([1.0, 2.0, 3.0], level=1.5)
    with pytest.raises(ValueError, match="scale must be positive"):
        P.qq_table([1.0, 2.0, 3.0], scale=0.0)


def test_plot_qq_points_band_and_legend_match_the_residuals(ml):
    r = ml.residuals(scaled=True)
    ax = P.plot_qq(r)
    t = P.qq_table(r)
    inside = by_gid(ax.collections, "points")[0].get_offsets()
    outside = by_gid(ax.collections, "outside")[0].get_offsets()
    assert len(inside) + len(outside) == ml.nobs == len(r)
    assert len(outside) == int(t["outside"].sum())
    np.testing.assert_allclose(np.sort(np.concatenate([inside[:, 1], outside[:, 1]])), np.sort(r))
    ref = by_gid(ax.get_lines(), "reference")[0]
    np.testing.assert_allclose(ref.get_ydata(), ref.get_xdata())  # N(0, 1): the line y = x
    assert len(by_gid(ax.collections, "band")) == 1
    assert f"outside: {int(t['outside'].sum()):,}" in " ".join(legend_texts(ax.get_legend()))


def test_plot_residuals_against_fitted_and_predictor(ml, arrests):
    ax = P.plot_residuals(ml)
    pts = by_gid(ax.collections, "points")[0].get_offsets()
    np.testing.assert_allclose(pts[:, 0], ml.fitted)
    np.testing.assert_allclose(pts[:, 1], (arrests[Y] - ml.fitted) / ml.sigma)
    line = by_gid(ax.get_lines(), "binned_mean")[0]
    assert len(line.get_xdata()) == 20
    order = np.argsort(ml.fitted.to_numpy(), kind="stable")
    first = order[: len(order) // 20 + (len(order) % 20 > 0)]
    assert line.get_ydata()[0] == pytest.approx(ml.residuals(scaled=True).to_numpy()[first].mean())
    assert by_gid(ax.get_lines(), "zero")[0].get_ydata()[0] == 0
    assert ax.get_xlabel() == "Fitted values" and ax.get_ylabel() == "Scaled residuals"
    ax2 = P.plot_residuals(ml, X, scaled=False, bins=5, labels=LABELS)
    pts2 = by_gid(ax2.collections, "points")[0].get_offsets()
    np.testing.assert_allclose(pts2[:, 0], arrests[X])
    np.testing.assert_allclose(pts2[:, 1], arrests[Y] - ml.fitted)
    assert len(by_gid(ax2.get_lines(), "binned_mean")[0].get_xdata()) == 5
    assert ax2.get_xlabel() == LABELS[X] and ax2.get_ylabel() == "Residuals"


def test_plot_residuals_errors(ml, pooled):
    with pytest.raises(TypeError):
        P.plot_residuals(pooled)
    with pytest.raises(ValueError, match="nope"):
        P.plot_residuals(ml, "nope")
    with pytest.raises(ValueError, match="bins"):
        P.plot_residuals(ml, bins=0)


def test_plot_ranef_qq_one_panel_per_factor_with_the_model_sd(county_model, ml):
    axes = P.plot_ranef_qq(county_model)
    assert [a.get_title() for a in axes] == ["county:stusps: (Intercept)", "stusps: (Intercept)"]
    vc = county_model.varcorr.set_index("grp")["sdcor"]
    modes = mh.ranef(county_model)
    for ax, factor in zip(axes, ["county:stusps", "stusps"], strict=True):
        ys = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections if c.get_gid() in ("points", "outside")])
        np.testing.assert_allclose(np.sort(ys), np.sort(modes[factor]["(Intercept)"]))
        ref = by_gid(ax.get_lines(), "reference")[0]
        slope = np.polyfit(ref.get_xdata(), ref.get_ydata(), 1)[0]
        assert slope == pytest.approx(vc[factor])  # reference N(0, sigma_factor^2)
    one = P.plot_ranef_qq(ml)
    assert len(one) == 1 and one[0].get_title() == "stusps: (Intercept)"


def test_plot_sim_stat_histogram_line_and_share(ml):
    sims = mh.simulate(ml, nsim=40, seed=5)
    stat = sims.max()
    obs = float(np.quantile(stat, 0.3))
    ax = P.plot_sim_stat(stat, obs, xlabel="Largest value")
    bars = by_gid(ax.patches, "simulated")
    assert sum(b.get_height() for b in bars) == 40
    assert by_gid(ax.get_lines(), "observed")[0].get_xdata()[0] == obs
    share = np.mean(stat.to_numpy() >= obs)
    assert f"share ≥ observed: {share:.3f}" in " ".join(legend_texts(ax.get_legend()))
    assert ax.get_xlabel() == "Largest value"
    with pytest.raises(ValueError, match="finite"):
        P.plot_sim_stat([1.0, np.nan], 1.0)
    with pytest.raises(ValueError, match="observed"):
        P.plot_sim_stat([1.0, 2.0], np.inf)
