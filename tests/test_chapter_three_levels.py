"""Chapter 06, counties within states and crossed groups: every printed number, checked.

The chapter's prose numbers are glued values stored in the notebook; its tables are stored
outputs. Both are read here and checked against

- lme4 1.1-31's results, pinned in ``tests/r/chapter06_three_levels.json`` by the script
  ``tests/r/chapter06_three_levels.R`` (its printout: ``chapter06_three_levels.Rout``);
- independent computations: generalized least squares from the definition (V built block by
  block at lme4's variance components), the closed-form conditional mode of a state in the
  three-level model, numpy least squares for the fixed-effects slope, the ANOVA estimators of
  the balanced crossed design, the balanced-design standard error of the mean, and an
  asymptotic series for the χ² tail of the likelihood-ratio test.

CI never runs R: the pinned JSON is all these tests need.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from chapter_tools import notebook_fixtures, output_of
from scipy import stats

import mlmhelpers as mh

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "book" / "06_three_levels.ipynb"
REF = json.loads((ROOT / "tests" / "r" / "chapter06_three_levels.json").read_text())
Y = "violent_arrest_per1000"
YEAR = "factor(year)2016"


# ------------------------------------------------------------------ fixtures
nb, glued = notebook_fixtures(NOTEBOOK)



NUMBER = re.compile(r"-?\d+\.\d+")


def count_shown(text: str, value: float, fmt: str) -> int:
    """How many numbers printed in text with fmt's decimals equal value to that precision.

    A printed number matches if it is within 0.6 units of its last digit of the reference
    (half a unit for rounding, plus lme4-vs-engine differences far below the printed digits).
    """
    decimals = int(re.fullmatch(r"\.(\d+)f", fmt).group(1))
    numbers = [float(x) for x in NUMBER.findall(text) if len(x.split(".")[1]) == decimals]
    return sum(abs(x - value) <= 0.6 * 10.0 ** -decimals for x in numbers)


def shows(text: str, value: float, fmt: str) -> bool:
    return count_shown(text, value, fmt) > 0


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    d = mh.load_arrests()
    d["county"] = d["fips"]
    return d


def var(ref: dict, grp: str) -> float:
    vc = ref["varcorr"]
    return vc["vcov"][vc["grp"].index(grp)]


# ------------------------------------------------------------- notebook form
def test_figure_has_caption_name_and_alt_text(nb):
    figures = [c for c in nb.cells if c.cell_type == "code"
               and any("image/png" in o.get("data", {}) for o in c.get("outputs", []))]
    assert len(figures) == 1
    meta = figures[0].metadata["mystnb"]
    assert meta["figure"]["name"] == "fig-levels-raters" and meta["figure"]["caption"]
    assert meta["image"]["alt"]


def test_exercises_have_gated_solutions(nb):
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    labels = re.findall(r"```\{exercise\}\n:label: (levels-ex-\d+)", text)
    assert labels == [f"levels-ex-{i}" for i in range(1, 5)]
    for label in labels:
        assert f"```{{solution-start}} {label}\n:class: dropdown\n```" in text
    assert text.count("```{solution-end}") == len(labels)


def test_glue_cells_are_hidden(nb):
    for c in nb.cells:
        if c.cell_type == "code" and "glue(" in c.source:
            assert "remove-cell" in c.metadata.get("tags", []), c.source[:60]


def test_execution_counts_are_in_order(nb):
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))


# ------------------------------------------------------------------ the data
def test_counts_of_rows_codes_and_counties(glued):
    raw = pd.read_csv(ROOT / "data" / "violent_arrest_data.csv")
    pairs = raw.groupby(["stusps", "fips"]).size()
    states_per_code = raw.drop_duplicates(["stusps", "fips"]).groupby("fips").size()
    assert glued["n_rows"] == len(raw) == 4286
    assert glued["n_fips"] == raw.fips.nunique() == REF["lumped"]["ngrps"]["county"]
    assert glued["n_counties"] == len(pairs) == REF["three"]["ngrps"]["county:stusps"]
    assert glued["n_one_row"] == (pairs == 1).sum()
    assert glued["n_two_rows"] == (pairs == 2).sum()
    assert glued["n_one_row"] + glued["n_two_rows"] + (pairs == 3).sum() == len(pairs)
    assert glued["shared_codes"] == (states_per_code > 1).sum()


def test_simulate_ratings_matches_the_csv_given_to_r():
    """The crossed data lme4 fitted (tests/data/ratings.csv) are simulate_ratings()'s."""
    text = (ROOT / "tests" / "data" / "ratings.csv").read_text()
    assert mh.simulate_ratings().to_csv(index=False) == text


# --------------------------------------------- the three-level model vs lme4
@pytest.fixture(scope="module")
def fits(data) -> dict:
    d = data.assign(pov_state=data.groupby("stusps")["pop_pct_pov"].transform("mean"))
    d["pov_within"] = d.pop_pct_pov - d.pov_state
    d["pov_county"] = d.groupby(["stusps", "county"])["pop_pct_pov"].transform("mean")
    r = mh.simulate_ratings()
    return {
        "state": mh.lmer(f"{Y} ~ pop_pct_pov + (1 | stusps)", d),
        "state_year": mh.lmer(f"{Y} ~ pop_pct_pov + factor(year) + (1 | stusps)", d),
        "three": mh.lmer(f"{Y} ~ pop_pct_pov + factor(year) + (1 | stusps/county)", d),
        "wb": mh.lmer(f"{Y} ~ pov_within + pov_state + factor(year) + (1 | stusps/county)", d),
        "ctx": mh.lmer(f"{Y} ~ pop_pct_pov + pov_state + factor(year) + (1 | stusps/county)", d),
        "wb_two": mh.lmer(f"{Y} ~ pov_within + pov_state + (1 | stusps)", d),
        "lumped": mh.lmer(f"{Y} ~ pop_pct_pov + factor(year) + (1 | stusps) + (1 | county)", d),
        "split": mh.lmer(f"{Y} ~ I(pop_pct_pov - pov_county) + I(pov_county - pov_state)"
                         " + pov_state + factor(year) + (1 | stusps/county)", d),
        "crossed": mh.lmer("score ~ 1 + (1 | rater) + (1 | essay)", r),
        "essay_only": mh.lmer("score ~ 1 + (1 | essay)", r),
    }


@pytest.mark.parametrize("name", ["state", "state_year", "three", "wb", "ctx", "wb_two", "lumped",
                                  "split", "crossed", "essay_only"])
def test_every_fit_of_the_chapter_matches_lme4(fits, name):
    m, ref = fits[name], REF[name]
    assert m.reml_criterion == pytest.approx(ref["crit"], abs=2e-3)
    fe, se = m.fixef, m.se_fixef
    assert list(fe.index) == list(ref["fixef"])
    for term in fe.index:
        assert fe[term] == pytest.approx(ref["fixef"][term], rel=1e-4, abs=1e-5), term
        assert se[term] == pytest.approx(ref["se"][term], rel=1e-4), term
    vc = mh.varcorr(m)
    assert list(vc["grp"]) == ref["varcorr"]["grp"]
    np.testing.assert_allclose(vc["vcov"], ref["varcorr"]["vcov"], rtol=2e-4)


def test_glued_three_level_numbers_match_lme4(glued):
    t, two, ch2 = REF["three"], REF["state_year"], REF["state"]
    vs, vc, v0 = var(t, "stusps"), var(t, "county:stusps"), var(t, "Residual")
    total = vs + vc + v0
    expected = {
        "var_state": vs, "var_county": vc, "var_resid": v0,
        "sd_state": vs ** 0.5, "sd_county": vc ** 0.5, "sd_resid": v0 ** 0.5,
        "three_slope": t["fixef"]["pop_pct_pov"], "three_slope_se": t["se"]["pop_pct_pov"],
        "three_year": t["fixef"][YEAR], "three_year_se": t["se"][YEAR],
        "three_reml": t["crit"],
        "pct_state": 100 * vs / total, "pct_county": 100 * vc / total, "pct_resid": 100 * v0 / total,
        "ch2_slope": ch2["fixef"]["pop_pct_pov"], "ch2_slope_se": ch2["se"]["pop_pct_pov"],
        "two_slope": two["fixef"]["pop_pct_pov"], "two_year": two["fixef"][YEAR],
        "two_year_se": two["se"][YEAR], "two_var_state": var(two, "stusps"),
        "two_var_resid": var(two, "Residual"), "year_se_ratio": t["se"][YEAR] / two["se"][YEAR],
        # the two correlations, and chapter 2's ICC, from lme4's variances
        "icc_state": vs / total, "icc_county": (vs + vc) / total,
        "icc_ch2": var(ch2, "stusps") / (var(ch2, "stusps") + var(ch2, "Residual")),
        "reml_gap": two["crit"] - t["crit"],
    }
    for key, value in expected.items():
        assert glued[key] == pytest.approx(value, rel=2e-4, abs=2e-5), key
    # chapter 2's printed numbers (lecture B) are the ones this chapter revisits
    assert f"{glued['ch2_slope']:.3f}" == "0.133" and f"{glued['ch2_slope_se']:.4f}" == "0.0103"


def test_compare_table_is_lmes(nb):
    text = output_of(nb, "compare = pd.DataFrame(")
    for name in ("state", "state_year", "three"):
        ref = REF[name]
        assert shows(text, ref["fixef"]["pop_pct_pov"], ".4f") and shows(text, ref["se"]["pop_pct_pov"], ".4f")
        assert shows(text, var(ref, "stusps"), ".4f") and shows(text, var(ref, "Residual"), ".4f")
    assert shows(text, var(REF["three"], "county:stusps"), ".4f")
    assert shows(text, REF["three"]["se"][YEAR], ".4f") and shows(text, REF["state_year"]["se"][YEAR], ".4f")


def test_three_level_gls_from_the_definition(data):
    """β̂ and its standard errors by GLS with V built state by state at lme4's variances."""
    t = REF["three"]
    vs, vc, v0 = var(t, "stusps"), var(t, "county:stusps"), var(t, "Residual")
    X = np.column_stack([np.ones(len(data)), data.pop_pct_pov, (data.year == 2016).astype(float)])
    y = data[Y].to_numpy()
    XtVX, XtVy = np.zeros((3, 3)), np.zeros(3)
    for _, idx in data.groupby("stusps").indices.items():
        county = data.county.to_numpy()[idx]
        same_county = (county[:, None] == county[None, :]).astype(float)
        V = vs + vc * same_county + v0 * np.eye(len(idx))
        XtVX += X[idx].T @ np.linalg.solve(V, X[idx])
        XtVy += X[idx].T @ np.linalg.solve(V, y[idx])
    beta = np.linalg.solve(XtVX, XtVy)
    se = np.sqrt(np.diag(np.linalg.inv(XtVX)))
    np.testing.assert_allclose(beta, list(t["fixef"].values()), rtol=1e-5)
    np.testing.assert_allclose(se, list(t["se"].values()), rtol=1e-4)


# ------------------------------------------------------------- shrinkage weights
def test_state_conditional_modes_by_the_closed_form(data, glued, nb):
    """b_s = σ_s² Σ_c w_c r̄_c / (1 + σ_s² Σ_c w_c), w_c = 1/(σ_c² + σ²/n_c), at lme4's numbers."""
    t = REF["three"]
    vs, vc, v0 = var(t, "stusps"), var(t, "county:stusps"), var(t, "Residual")
    fe = t["fixef"]
    r = data[Y] - fe["(Intercept)"] - fe["pop_pct_pov"] * data.pop_pct_pov - fe[YEAR] * (data.year == 2016)
    cm = r.groupby([data.stusps, data.county]).agg(["mean", "size"])
    w = 1 / (vc + v0 / cm["size"])
    W = w.groupby(level=0).sum()
    b = vs * (w * cm["mean"]).groupby(level=0).sum() / (1 + vs * W)
    lme4_modes = pd.Series(REF["ranef_state"])
    np.testing.assert_allclose(b[lme4_modes.index], lme4_modes, atol=2e-5)
    w_three = vs * W / (1 + vs * W)
    two = REF["state_year"]
    rows = data.groupby("stusps").size()
    w_two = rows * var(two, "stusps") / (rows * var(two, "stusps") + var(two, "Residual"))
    counties = cm["size"].groupby(level=0).size()
    table = output_of(nb, 'examples = ["DC"')
    for state in ["DC", "DE", "VT", "HI", "AK", "TX"]:
        k = state.lower()
        assert glued[f"rows_{k}"] == rows[state] and glued[f"counties_{k}"] == counties[state]
        assert glued[f"w2_{k}"] == pytest.approx(w_two[state], abs=2e-5)
        assert glued[f"w3_{k}"] == pytest.approx(w_three[state], abs=2e-5)
        assert shows(table, w_two[state], ".3f") and shows(table, w_three[state], ".3f")
    assert glued["n_lower"] == (w_three < w_two).sum()
    # chapter 2's model (without county) and its own closed form agree with lme4 too
    two_modes = pd.Series(REF["ranef_state_two"])
    r2 = data[Y] - two["fixef"]["(Intercept)"] - two["fixef"]["pop_pct_pov"] * data.pop_pct_pov \
        - two["fixef"][YEAR] * (data.year == 2016)
    np.testing.assert_allclose((w_two * r2.groupby(data.stusps).mean())[two_modes.index], two_modes, atol=2e-5)
    assert output_of(nb, "by_formula =").strip() == "formula and ranef() agree to 1e-10: True"


def test_exercise_2_weights(nb):
    t, two = REF["three"], REF["state_year"]
    vs, vc, v0 = var(t, "stusps"), var(t, "county:stusps"), var(t, "Residual")
    text = output_of(nb, "def weight_three")
    w2 = 20 * var(two, "stusps") / (20 * var(two, "stusps") + var(two, "Residual"))
    for counties, years in [(10, 2), (20, 1)]:
        W = counties / (vc + v0 / years)
        assert shows(text, vs * W / (1 + vs * W), ".3f")
    assert shows(text, w2, ".3f")


# ------------------------------------------------------------- the LRT
def _log10_chi2_1_sf(x: float) -> float:
    """log10 P(χ²₁ > x) = log10 erfc(√(x/2)), by the asymptotic series of erfc (large x)."""
    z = np.sqrt(x / 2)
    series = sum((-1) ** k * np.prod(np.arange(1, 2 * k, 2)) / (2 * z * z) ** k for k in range(6))
    return (-z * z - np.log(z * np.sqrt(np.pi)) + np.log(series)) / np.log(10)


def test_county_lrt_and_its_mixture_p_value(glued, nb):
    a = REF["anova_county"]
    assert a["Df"] == 1
    assert glued["lr_county"] == pytest.approx(a["Chisq"], abs=1e-3)
    assert a["Chisq"] == pytest.approx(2 * (REF["three_ml"]["logLik"] - REF["state_year_ml"]["logLik"]))
    assert glued["log10_p_county"] == pytest.approx(np.log10(0.5) + _log10_chi2_1_sf(a["Chisq"]), abs=1e-3)
    assert round(glued["log10_p_county"]) == -416
    text = output_of(nb, "lrt = anova(two_levels")
    assert shows(text, a["Chisq"], ".1f") and shows(text, -2 * REF["three_ml"]["logLik"], ".1f")
    text = output_of(nb, "reml_gap = ")
    assert shows(text, REF["state_year"]["crit"], ".1f") and shows(text, REF["three"]["crit"], ".1f")


# ------------------------------------------------------------- Mundlak
def test_within_between_and_contextual_slopes(glued, nb):
    wb, ctx, a = REF["wb"], REF["ctx"], REF["anova_context"]
    expected = {
        "beta_w": wb["fixef"]["pov_within"], "beta_w_se": wb["se"]["pov_within"],
        "beta_b": wb["fixef"]["pov_state"], "beta_b_se": wb["se"]["pov_state"],
        "ctx": ctx["fixef"]["pov_state"], "ctx_se": ctx["se"]["pov_state"],
        "ctx_chisq": a["Chisq"], "ctx_p": a["p"],
    }
    for key, value in expected.items():
        assert glued[key] == pytest.approx(value, rel=2e-3, abs=2e-5), key
    # the reparametrisation: β_B - β_W is the contextual effect, β_W the poverty coefficient
    assert wb["fixef"]["pov_state"] - wb["fixef"]["pov_within"] == pytest.approx(ctx["fixef"]["pov_state"], abs=1e-6)
    assert ctx["fixef"]["pop_pct_pov"] == pytest.approx(wb["fixef"]["pov_within"], abs=1e-6)
    assert a["p"] == pytest.approx(stats.chi2.sf(a["Chisq"], 1), rel=1e-6)
    text = output_of(nb, "slopes = pd.DataFrame(")
    for v in expected["beta_w"], expected["beta_b"], expected["ctx"], expected["ctx_se"]:
        assert shows(text, v, ".4f")


def test_within_slope_equals_the_least_squares_fixed_effects_slope(data, glued, nb):
    states = pd.get_dummies(data.stusps, dtype=float).to_numpy()
    X = np.column_stack([data.pop_pct_pov, states])
    beta = np.linalg.lstsq(X, data[Y].to_numpy(), rcond=None)[0][0]
    assert beta == pytest.approx(REF["fe_slope"], rel=1e-9)
    assert REF["wb_two"]["fixef"]["pov_within"] == pytest.approx(beta, rel=1e-6)
    assert glued["fe_slope"] == pytest.approx(beta, abs=1e-6)
    text = output_of(nb, '"state dummies, lm()"')
    assert count_shown(text, beta, ".6f") == 2 and shows(text, REF["state"]["fixef"]["pop_pct_pov"], ".6f")


# ------------------------------------------------------------- exercises 1 and 3
def test_exercise_1_lumped_counties(glued):
    lu = REF["lumped"]
    assert glued["lumped_var_state"] == pytest.approx(var(lu, "stusps"), rel=2e-4)
    assert glued["lumped_var_county"] == pytest.approx(var(lu, "county"), rel=2e-4)
    assert glued["lumped_slope"] == pytest.approx(lu["fixef"]["pop_pct_pov"], abs=2e-5)


def test_exercise_3_three_slopes(glued):
    sp = REF["split"]
    names = list(sp["fixef"])
    assert glued["slope_in_county"] == pytest.approx(sp["fixef"][names[1]], abs=2e-5)
    assert glued["slope_in_county_se"] == pytest.approx(sp["se"][names[1]], abs=2e-5)
    assert glued["slope_between_county"] == pytest.approx(sp["fixef"][names[2]], abs=2e-5)
    assert glued["slope_between_county_se"] == pytest.approx(sp["se"][names[2]], abs=2e-5)


# ------------------------------------------------------------- crossed design
def test_crossed_variances_are_the_anova_estimators(glued):
    """Balanced crossed design, one rating per cell: REML = the ANOVA (moment) estimators."""
    r = mh.simulate_ratings()
    R, E = r.rater.nunique(), r.essay.nunique()
    table = r.pivot(index="essay", columns="rater", values="score").to_numpy()
    grand = table.mean()
    ms_rater = E * ((table.mean(axis=0) - grand) ** 2).sum() / (R - 1)
    ms_essay = R * ((table.mean(axis=1) - grand) ** 2).sum() / (E - 1)
    resid = table - table.mean(axis=1, keepdims=True) - table.mean(axis=0, keepdims=True) + grand
    ms_resid = (resid ** 2).sum() / ((R - 1) * (E - 1))
    v_rater, v_essay = (ms_rater - ms_resid) / E, (ms_essay - ms_resid) / R
    cr = REF["crossed"]
    np.testing.assert_allclose([var(cr, "essay"), var(cr, "rater"), var(cr, "Residual")],
                               [v_essay, v_rater, ms_resid], rtol=1e-5)
    total = v_essay + v_rater + ms_resid
    expected = {"cr_sd_essay": v_essay ** 0.5, "cr_sd_rater": v_rater ** 0.5, "cr_sd_resid": ms_resid ** 0.5,
                "cr_mean": grand, "icc_essay": v_essay / total, "icc_rater": v_rater / total,
                "cr_mean_se": np.sqrt(v_rater / R + v_essay / E + ms_resid / (R * E))}
    for key, value in expected.items():
        assert glued[key] == pytest.approx(value, rel=1e-4), key
    assert cr["se"]["(Intercept)"] == pytest.approx(expected["cr_mean_se"], rel=1e-5)
    # balanced design: the rater modes are the rater means shrunk by E σ_r² / (E σ_r² + σ²)
    modes = (table.mean(axis=0) - grand) * E * v_rater / (E * v_rater + ms_resid)
    raters = sorted(r.rater.unique())
    assert glued["harshest"] == raters[int(np.argmin(modes))]
    assert glued["mildest"] == raters[int(np.argmax(modes))]
    assert glued["harshest_dev"] == pytest.approx(-modes.min(), rel=1e-4)
    assert glued["mildest_dev"] == pytest.approx(modes.max(), rel=1e-4)


def test_nested_syntax_on_crossed_data_is_refused(nb):
    text = output_of(nb, "(1 | rater/essay)")
    assert "essay:rater has 320 levels for 320 observations" in text


def test_exercise_4_standard_errors(nb):
    cr, eo = REF["crossed"], REF["essay_only"]
    text = output_of(nb, "m_essay = lmer(")
    assert count_shown(text, cr["se"]["(Intercept)"], ".3f") == 2  # the fit and the formula
    assert shows(text, eo["se"]["(Intercept)"], ".3f")
    assert shows(text, cr["sigma"], ".3f") and shows(text, eo["sigma"], ".3f")
