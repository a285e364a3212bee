"""Chapter 2 (book/02_pooling_violent_arrests.ipynb): its numbers and its structure.

The numbers are pinned two ways: against the digits the source lecture printed (lecture B,
"Multilevel models, part 1", R and lme4), and against an independent computation written
here with numpy/scipy only: least squares for the two `lm` models, the within-state
estimator for the fixed effects, and a hand-written profiled REML criterion with the closed
form of the random intercepts. The structural tests read the committed notebook: the
correction box, the glue keys used in the prose, the Colab cell, the figure metadata and the
exercises.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

import mlmhelpers as mh

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "book" / "02_pooling_violent_arrests.ipynb"
DATA = ROOT / "data" / "violent_arrest_data.csv"
Y, X, G = "violent_arrest_per1000", "pop_pct_pov", "stusps"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.read_csv(DATA, dtype={G: str})


@pytest.fixture(scope="module")
def models(data):
    """The chapter's three models, fitted with mlmhelpers exactly as the chapter does."""
    return {
        "complete": mh.lm(f"{Y} ~ {X}", data),
        "state_fe": mh.lm(f"{Y} ~ {X} + factor({G})", data),
        "state_ml": mh.lmer(f"{Y} ~ {X} + (1 | {G})", data),
    }


def ols(y: np.ndarray, Xm: np.ndarray) -> dict:
    """Least squares with R's summary.lm quantities and logLik-based BIC."""
    n, p = Xm.shape
    beta, *_ = np.linalg.lstsq(Xm, y, rcond=None)
    resid = y - Xm @ beta
    rss = float(resid @ resid)
    s2 = rss / (n - p)
    se = np.sqrt(np.diag(s2 * np.linalg.inv(Xm.T @ Xm)))
    t = beta / se
    pval = 2 * stats.t.sf(np.abs(t), n - p)
    loglik = -0.5 * n * (np.log(2 * np.pi) + np.log(rss / n) + 1)
    bic = -2 * loglik + np.log(n) * (p + 1)  # sigma counts as a parameter, as in R
    return {"beta": beta, "se": se, "t": t, "p": pval, "bic": bic}


@pytest.fixture(scope="module")
def reml(data) -> dict:
    """A random-intercept model fitted by REML from scratch.

    With H = I + θ² Z Zᵀ (one block per state, H_s = I + θ² J), the profiled REML
    criterion is (n − p)(1 + log(2π σ̂²)) + log|H| + log|Xᵀ H⁻¹ X|, with
    σ̂² = rᵀ H⁻¹ r / (n − p) at the GLS estimate β̂ (Bates et al. 2015, eq. 42).
    """
    y = data[Y].to_numpy(float)
    Xm = np.column_stack([np.ones(len(data)), data[X].to_numpy(float)])
    codes, levels = pd.factorize(data[G], sort=True)
    nj = np.bincount(codes).astype(float)
    n, p = Xm.shape

    def group_sum(v):
        return np.stack([np.bincount(codes, weights=col) for col in np.atleast_2d(v.T)], axis=-1)

    Sx, Sy = group_sum(Xm), group_sum(y[:, None])[:, 0]

    def solve(theta: float):
        c = theta**2 / (1 + nj * theta**2)  # H_s⁻¹ = I − c_s J
        XtHX = Xm.T @ Xm - (Sx * c[:, None]).T @ Sx
        XtHy = Xm.T @ y - (Sx * c[:, None]).T @ Sy
        beta = np.linalg.solve(XtHX, XtHy)
        r = y - Xm @ beta
        Sr = np.bincount(codes, weights=r)
        rHr = r @ r - np.sum(c * Sr**2)
        s2 = rHr / (n - p)
        crit = ((n - p) * (1 + np.log(2 * np.pi * s2)) + np.sum(np.log1p(nj * theta**2))
                + np.linalg.slogdet(XtHX)[1])
        return crit, beta, s2, XtHX, r, Sr

    res = optimize.minimize_scalar(lambda t: solve(t)[0], bounds=(1e-6, 5), method="bounded",
                                   options={"xatol": 1e-10})
    crit, beta, s2, XtHX, r, Sr = solve(res.x)
    var_state = res.x**2 * s2
    w = nj * var_state / (nj * var_state + s2)
    alpha = beta[0] + w * Sr / nj  # closed form: μ + w_s × (state mean of y − μ − βx)
    fitted = Xm @ beta + (alpha - beta[0])[codes]
    return {
        "criterion": crit, "beta": beta, "vcov": s2 * np.linalg.inv(XtHX), "var_state": var_state,
        "var_resid": s2, "alpha": pd.Series(alpha, index=levels), "weight": pd.Series(w, index=levels),
        "scaled_resid": (y - fitted) / np.sqrt(s2), "n": pd.Series(nj, index=levels),
    }


@pytest.fixture(scope="module")
def notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


def r3(x: float) -> str:
    """R's (tibble's) three significant digits."""
    return f"{x:.3g}"


# ------------------------------------------------------------- complete pooling and FE


def test_complete_pooling_matches_least_squares_and_lecture(data, models):
    fit = ols(data[Y].to_numpy(float), np.column_stack([np.ones(len(data)), data[X]]))
    ours = mh.tidy(models["complete"])
    np.testing.assert_allclose(ours.estimate, fit["beta"], rtol=1e-10)
    np.testing.assert_allclose(ours.std_error, fit["se"], rtol=1e-10)
    np.testing.assert_allclose(ours.p_value, fit["p"], rtol=1e-6)
    printed = [["2.21", "0.171", "12.9", "1.74e-37"], ["0.109", "0.00963", "11.3", "4.28e-29"]]
    for k, row in enumerate(printed):
        assert [r3(fit[key][k]) for key in ("beta", "se", "t", "p")] == row


def test_state_fixed_effects_match_within_estimator_and_lecture(data, models):
    fe = models["state_fe"]
    # Within-state estimator: demean y and x by state; the slope is their regression,
    # each state's intercept is its mean of y − βx.
    xd = data[X] - data.groupby(G)[X].transform("mean")
    yd = data[Y] - data.groupby(G)[Y].transform("mean")
    slope = float((xd * yd).sum() / (xd * xd).sum())
    intercepts = (data[Y] - slope * data[X]).groupby(data[G]).mean()
    ints = mh.group_intercepts(fe, G)
    assert ints.index[0] == "AK"  # R's reference level: the first state alphabetically
    np.testing.assert_allclose(ints["estimate"], intercepts.reindex(ints.index), rtol=1e-9, atol=1e-9)
    assert ints["n"].to_dict() == data[G].value_counts().reindex(ints.index).to_dict()
    assert abs(fe.coef[X] - slope) < 1e-10
    # The first rows of the lecture's tidy() table.
    t = mh.tidy(fe).set_index("term")
    cols = ["estimate", "std_error", "statistic", "p_value"]
    assert [r3(v) for v in t.loc["(Intercept)", cols]] == ["11.6", "0.808", "14.3", "2.78e-45"]
    assert [r3(v) for v in t.loc[X, cols]] == ["0.134", "0.0103", "12.9", "1.24e-37"]
    assert [r3(v) for v in t.loc["factor(stusps)AL", cols]] == ["-9.07", "0.909", "-9.98", "3.35e-23"]
    assert [r3(v) for v in t.loc["factor(stusps)DC", cols[:3]]] == ["2.09", "2.78", "0.751"]
    assert [r3(v) for v in t.loc["factor(stusps)DE", cols[:3]]] == ["-12.3", "2.32", "-5.29"]


def test_bic_table(data, models):
    table = mh.bic(m_complete_pooling=models["complete"], m_state_fe=models["state_fe"])
    assert table["df"].tolist() == [3, 53]
    assert [f"{v:.2f}" for v in table["BIC"]] == ["24507.84", "23917.00"]
    dummies = pd.get_dummies(data[G], drop_first=True, dtype=float).to_numpy()
    Xfe = np.column_stack([np.ones(len(data)), data[X], dummies])
    assert abs(ols(data[Y].to_numpy(float), Xfe)["bic"] - table.loc["m_state_fe", "BIC"]) < 1e-6


# ------------------------------------------------------------------------- multilevel


def test_reml_fit_matches_hand_computation_and_lecture(models, reml):
    m = models["state_ml"]
    assert f"{reml['criterion']:.1f}" == f"{m.reml_criterion:.1f}" == "23701.8"
    vc = mh.varcorr(m)
    assert abs(vc.vcov[0] - reml["var_state"]) < 1e-4
    assert abs(vc.vcov[1] - reml["var_resid"]) < 1e-4
    assert [f"{v:.3f}" for v in vc.vcov] == ["5.942", "14.196"]
    assert [f"{v:.3f}" for v in vc.sdcor] == ["2.438", "3.768"]
    np.testing.assert_allclose(mh.fixef(m), reml["beta"], rtol=1e-6)
    se = np.sqrt(np.diag(reml["vcov"]))
    np.testing.assert_allclose(mh.se_fixef(m), se, rtol=1e-5)
    assert [f"{v:.5f}" for v in reml["beta"]] == ["1.86112", "0.13340"]
    assert [f"{v:.5f}" for v in se] == ["0.38769", "0.01029"]
    assert [f"{v:.3f}" for v in reml["beta"] / se] == ["4.801", "12.968"]
    v = reml["vcov"]
    assert f"{v[0, 1] / np.sqrt(v[0, 0] * v[1, 1]):.3f}" == "-0.401"
    assert m.nobs == 4286 and m.ngroups[G] == 51


def test_scaled_residuals_match_lecture(models, reml):
    printed = ["-2.8999", "-0.4908", "-0.1751", "0.2522", "15.7779"]
    q = np.quantile(reml["scaled_resid"], [0, 0.25, 0.5, 0.75, 1])  # R's type 7
    assert [f"{v:.4f}" for v in q] == printed
    ours = models["state_ml"].residuals(scaled=True).quantile([0, 0.25, 0.5, 0.75, 1])
    assert [f"{v:.4f}" for v in ours] == printed
    assert "-2.8999 -0.4908 -0.1751  0.2522 15.7779" in str(models["state_ml"].summary())


def test_random_intercepts_are_the_precision_weighted_average(models, reml):
    """coef(m) = μ̂ + w_s (mean_s(y − μ̂ − β̂x)), w_s = n_s σ²_α / (n_s σ²_α + σ²)."""
    ours = mh.coef(models["state_ml"])["(Intercept)"]
    ours.index = ours.index.astype(str)
    np.testing.assert_allclose(ours.reindex(reml["alpha"].index), reml["alpha"], atol=1e-4)
    table = mh.shrinkage_table(models["state_fe"], models["state_ml"])
    np.testing.assert_allclose(table["shrinkage_factor"], reml["weight"].reindex(table.index), atol=1e-5)
    # DC: two rows, weight below one half, pulled from 13.64 to 7.23.
    assert table.loc["DC", "n"] == 2
    assert f"{table.loc['DC', 'shrinkage_factor']:.3f}" == "0.456"
    assert f"{table.loc['DC', 'no_pooling']:.2f}" == "13.64"
    assert f"{table.loc['DC', 'partial_pooling']:.2f}" == "7.23"
    # Shrinkage grows as n falls: the weight is increasing in n ...
    by_n = table.sort_values("n")
    assert by_n["shrinkage_factor"].is_monotonic_increasing
    # ... and, at equal n, the shift grows with the distance from the mean (HI vs CT, n = 8).
    assert table.loc["HI", "n"] == table.loc["CT", "n"] == 8
    assert abs(table.loc["HI", "shift"]) > 5 * abs(table.loc["CT", "shift"])


def test_icc_divides_variances_not_sds(models, reml):
    m = models["state_ml"]
    vc = mh.varcorr(m)
    by_hand = vc.vcov[0] / (vc.vcov[0] + vc.vcov[1])
    assert abs(mh.icc(m) - by_hand) < 1e-12
    assert abs(mh.icc(m) - reml["var_state"] / (reml["var_state"] + reml["var_resid"])) < 1e-5
    assert f"{mh.icc(m):.3f}" == "0.295"
    # The lecture's 0.39 is the ratio of the standard deviations.
    assert f"{vc.sdcor[0] / (vc.sdcor[0] + vc.sdcor[1]):.2f}" == "0.39"
    assert f"{vc.sdcor[0]:.1f}" == "2.4" and f"{vc.sdcor[1]:.1f}" == "3.8"


# --------------------------------------------------------------------- the notebook


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def output_texts(nb) -> list[str]:
    texts = []
    for c in code_cells(nb):
        for o in c.outputs:
            if o.output_type == "stream":
                texts.append(o.text)
            elif "data" in o:
                texts.extend(v for k, v in o.data.items() if k.endswith("text/plain") or k == "text/html")
    return texts


def test_single_title_and_ordered_headings(notebook):
    levels = []
    for c in notebook.cells:
        if c.cell_type != "markdown":
            continue
        fence = False
        for line in c.source.splitlines():
            if line.startswith("```"):
                fence = not fence
            m = re.match(r"(#{1,6}) ", line)
            if m and not fence:
                levels.append(len(m.group(1)))
    assert notebook.cells[0].source == "# Pooling: violent arrests and poverty"
    assert levels.count(1) == 1 and levels[0] == 1
    assert all(b - a <= 1 for a, b in zip(levels[:-1], levels[1:], strict=True)), levels


def test_correction_box_for_the_icc(notebook):
    boxes = [c.source for c in notebook.cells if c.cell_type == "markdown"
             and "{admonition} Correction to the source lecture" in c.source and "0.39" in c.source]
    assert len(boxes) == 1
    box = boxes[0]
    assert ":class: warning" in box
    assert "0.39" in box and "icc:.3f" in box and "var_state" in box and "var_resid" in box
    assert "variances" in box and "standard deviations" in box


def test_glue_keys_used_in_the_prose_exist(notebook):
    used = set()
    for c in notebook.cells:
        if c.cell_type == "markdown":
            used |= set(re.findall(r"\{glue(?::\w+)?\}`([\w]+)", c.source))
    stored = set()
    for c in code_cells(notebook):
        for o in c.outputs:
            name = o.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                stored.add(name)
    assert used, "the chapter's prose uses no glued numbers"
    assert used <= stored, f"glue keys used but never stored: {sorted(used - stored)}"
    for key in ("icc", "var_state", "var_resid", "dc_weight", "bic_drop"):
        assert key in used


def test_figures_have_caption_name_and_alt_text(notebook):
    figures = [c for c in code_cells(notebook) if "mystnb" in c.metadata]
    assert len(figures) >= 8
    names = []
    for c in figures:
        fig = c.metadata["mystnb"]["figure"]
        assert fig["caption"].strip() and fig["name"].startswith("fig-arrests-")
        assert len(c.metadata["mystnb"]["image"]["alt"]) > 40
        assert any("image/png" in o.get("data", {}) for o in c.outputs), c.source
        assert c.source.lstrip().startswith(("_ =", "ax =", "axes =")), c.source
        names.append(fig["name"])
    assert len(set(names)) == len(names)


def test_every_number_the_lecture_prints_is_in_the_outputs(notebook):
    text = "\n".join(output_texts(notebook))
    printed = [
        "2.21", "0.171", "12.9", "1.74e-37", "0.109", "0.00963", "11.3", "4.28e-29",
        "11.6", "0.808", "14.3", "2.78e-45", "0.134", "0.0103", "1.24e-37", "-9.07", "0.909",
        "-9.98", "3.35e-23", "2.09", "2.78", "0.751", "-12.3", "2.32", "-5.29",
        "24507.84", "23917.00", "23701.8", "-2.8999", "-0.4908", "-0.1751", "0.2522", "15.7779",
        "5.942", "14.196", "2.438", "3.768", "1.86112", "0.38769", "4.801", "0.13340", "0.01029",
        "12.968", "-0.401", "4286", "51",
    ]
    missing = [p for p in printed if p not in text]
    assert not missing, missing
    assert "45 of 45 printed numbers reproduced" in text
    summary = next(o.text for c in code_cells(notebook) for o in c.outputs
                   if o.output_type == "stream" and "REML criterion at convergence" in o.text)
    assert "Number of obs: 4286, groups:  stusps, 51" in summary


def test_exercises_and_gated_solutions(notebook):
    sources = [c.source for c in notebook.cells if c.cell_type == "markdown"]
    labels = [m for s in sources for m in re.findall(r":label: (arrests-ex-\d+)", s)]
    assert 4 <= len(labels) <= 6 and labels == [f"arrests-ex-{i}" for i in range(1, len(labels) + 1)]
    starts = [s for s in sources if s.startswith("```{solution-start}")]
    ends = [s for s in sources if s.startswith("```{solution-end}")]
    assert [re.search(r"arrests-ex-\d+", s).group(0) for s in starts] == labels
    assert all(":class: dropdown" in s for s in starts) and len(ends) == len(starts)


def test_chapter_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    assert re.search(r"^chapters:\s*$", toc, re.M)
    assert re.search(r"^  - file: book/02_pooling_violent_arrests\s*$", toc, re.M)


# ------------------------------------------- corrections of issue 16 (boxes, glued numbers)


def glued_values(nb) -> dict:
    import ast

    out = {}
    for c in code_cells(nb):
        for o in c.outputs:
            meta = o.get("metadata", {}).get("scrapbook")
            if meta:
                out[meta["name"]] = ast.literal_eval(o["data"][meta["mime_prefix"] + "text/plain"])
    return out


def correction_boxes(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "markdown"
            and "{admonition} Correction to the source lecture\n:class: warning" in c.source]


def test_no_pooling_intercepts_are_adjusted_means_not_state_means(data, notebook):
    """Least squares with one dummy per state (numpy): β̂_s = ȳ_s − β̂₁ x̄_s, not ȳ_s."""
    glued = glued_values(notebook)
    codes, levels = pd.factorize(data[G], sort=True)
    D = np.zeros((len(data), len(levels)))
    D[np.arange(len(data)), codes] = 1.0
    y, x = data[Y].to_numpy(float), data[X].to_numpy(float)
    beta, *_ = np.linalg.lstsq(np.column_stack([D, x]), y, rcond=None)
    intercepts, slope = pd.Series(beta[:-1], index=levels), beta[-1]
    ybar = pd.Series(np.bincount(codes, weights=y) / np.bincount(codes), index=levels)
    xbar = pd.Series(np.bincount(codes, weights=x) / np.bincount(codes), index=levels)
    np.testing.assert_allclose(intercepts, ybar - slope * xbar, atol=1e-9)
    assert glued["np_identity_gap"] < 1e-9
    assert glued["tx_mean_rate"] == round(ybar["TX"], 2)
    assert glued["tx_intercept"] == round(intercepts["TX"], 2)
    assert glued["ky_mean_rate"] == round(ybar["KY"], 2)
    assert glued["ky_intercept"] == round(intercepts["KY"], 2) < 0
    assert abs(ybar["TX"] - intercepts["TX"]) > 2  # far from equal, as the box says
    box = next(b for b in correction_boxes(notebook) if "empirical group means" in b)
    assert "tx_mean_rate" in box and "tx_intercept" in box and "factor(stusps)" in box


def test_shrinkage_box_names_the_population_mean(notebook, reml):
    glued = glued_values(notebook)
    box = next(b for b in correction_boxes(notebook) if "toward group means" in b)
    assert "population" in box and "ml_intercept" in box
    assert glued["ml_intercept"] == round(reml["beta"][0], 3)
    assert len(correction_boxes(notebook)) == 4  # ICC, x-bar, state means, group means


def test_rows_and_counties_are_told_apart(data, notebook):
    """Counts of rows (county-years) and distinct counties, counted with plain Python sets."""
    glued = glued_values(notebook)
    rows = data[[G, "fips"]].itertuples(index=False)
    pairs = [(s, f) for s, f in rows]
    for state in ["DE", "VT", "HI", "AK", "ME", "TX"]:
        assert glued[f"rows_{state.lower()}"] == sum(s == state for s, _ in pairs)
        assert glued[f"counties_{state.lower()}"] == len({f for s, f in pairs if s == state})
    assert glued["n_counties"] == len(set(pairs)) < glued["n_rows"] == len(pairs)
    assert (glued["rows_hi"], glued["counties_hi"]) == (8, 4)
    text = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    assert "(8 counties)" not in text and "three counties each" not in text
    assert "eight counties each" not in text


def test_state_axes_are_labelled(notebook):
    """The two figures whose axis used to read "stusps" pass the chapter's labels."""
    for name in ("fig-arrests-caterpillar-fe", "fig-arrests-shrinkage"):
        c = next(c for c in code_cells(notebook)
                 if c.metadata.get("mystnb", {}).get("figure", {}).get("name") == name)
        assert "labels=LABELS" in c.source, name
    setup = next(c for c in code_cells(notebook) if c.source.startswith("LABELS = {"))
    assert '"stusps": "State"' in setup.source


def test_year_se_caution_points_the_right_way(notebook):
    """Exercise 1: ignoring counties makes the year SE too large (chapter 3, exercise 5)."""
    text = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    assert "too large rather than too small" in text and "{ref}`slopes-ex-5`" in text
