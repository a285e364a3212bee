"""Chapter 8 (book/08_counts_and_binary.ipynb): its numbers and its structure.

Every number the chapter prints or glues is checked against an independent source:

- lme4 1.1-31 (``tests/r/chapter08_counts_binary.R``, pinned in the ``.json`` beside it) for
  the Poisson and logistic fits, their Wald intervals, Pearson ratios and predictions;
- numpy/scipy written here: the reconstructed counts, rate and odds ratios from lme4's β and
  standard errors, brute-force integrals (``scipy.integrate.quad``) for the population-averaged
  probabilities and for the adaptive-quadrature log-likelihood, conditional modes by direct
  maximisation, and statsmodels' MixedLM for chapter 2's linear model.

The tests read the committed notebook (stored outputs: nbval makes sure they match a fresh
run) and compare its glued values at the precision the prose prints.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from chapter_tools import notebook_fixtures
from scipy import integrate, optimize, special, stats

import mlmhelpers as mh

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "book" / "08_counts_and_binary.ipynb"
REF = json.loads((ROOT / "tests" / "r" / "chapter08_counts_binary.json").read_text())
DATA = ROOT / "data" / "violent_arrest_data.csv"
TESTDATA = ROOT / "tests" / "data"
Z975 = stats.norm.ppf(0.975)


# --------------------------------------------------------------------------- helpers


nb, glued = notebook_fixtures(NOTEBOOK)


def outputs_text(nb) -> str:
    parts = []
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        for o in c.get("outputs", []):
            parts.append(o.get("text", "") if o["output_type"] == "stream"
                         else o.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def close(value, expected, decimals, extra=0.0):
    """The chapter's rounded value is the independent value at the printed precision.

    ``extra`` is the documented tolerance of the engine against lme4 for Laplace fits: β and θ
    within 1e-3 (lme4's Laplace log-determinant lags one PIRLS iteration; README, glmer).
    """
    tol = 0.5 * 10.0 ** -decimals + extra + 1e-6
    assert abs(value - float(expected)) <= tol, (value, expected)


@pytest.fixture(scope="module")
def arrests() -> pd.DataFrame:
    d = pd.read_csv(DATA, dtype={"stusps": str})
    d["raw"] = d["violent_arrest_per1000"] * d["pop_tot"] / 1000
    d["arrests"] = np.round(d["raw"]).astype(int)  # ties to even, as R's round()
    return d


def clinics_csv(name: str) -> pd.DataFrame:
    return pd.read_csv(TESTDATA / name)


# --------------------------------------------------------------------------- data


@pytest.mark.parametrize("name, kwargs", [
    ("clinics.csv", {}),
    ("clinics_pairs.csv", {"n_clinics": 150, "min_patients": 2, "max_patients": 2, "seed": 7}),
    ("clinics_large.csv", {"n_clinics": 40, "min_patients": 40, "max_patients": 60, "seed": 3}),
])
def test_r_reference_data_are_the_chapters_simulations(name, kwargs):
    """The CSV files lme4 was fitted to are exactly what the chapter simulates."""
    pd.testing.assert_frame_equal(mh.simulate_clinics(**kwargs), clinics_csv(name), check_exact=False, rtol=1e-15)


def test_counts_and_their_rounding(arrests, glued):
    dist = (arrests["raw"] - arrests["arrests"]).abs()
    assert dist.max() <= 0.5
    close(glued["dist_median"], dist.median(), 3)
    close(glued["dist_max"], dist.max(), 3)
    close(glued["share_whole"], 100 * (dist < 1e-6).mean(), 1)
    q = 4 * arrests["raw"]
    close(glued["share_quarters"], 100 * ((q - np.round(q)).abs() < 1e-6).mean(), 1)
    ties = (dist - 0.5).abs() < 1e-6
    assert glued["n_ties"] == int(ties.sum()) > 0
    # the same counts as Python's own round() (round half to even on the stored double, as R)
    assert (arrests["arrests"] == [round(v) for v in arrests["raw"]]).all()
    assert glued["n_rows"] == len(arrests) == 4286
    assert glued["n_zero"] == int((arrests["arrests"] == 0).sum())
    assert glued["n_counties"] == len(set(zip(arrests["stusps"], arrests["fips"], strict=True)))
    assert (glued["pop_min"], glued["pop_max"]) == (arrests["pop_tot"].min(), arrests["pop_tot"].max())


# --------------------------------------------------------------------------- Poisson models


def test_poisson_state_model_matches_lme4(glued, nb):
    r = REF["state"]
    b0, b1 = r["beta"]
    close(glued["state_b0"], b0, 3)
    close(glued["state_b1"], b1, 4)
    close(glued["state_rate0"], 1000 * np.exp(b0), 3)
    close(glued["state_sd"], r["vc_sdcor"], 3)
    close(glued["state_sd_factor"], np.exp(r["vc_sdcor"]), 2)
    # rate ratio and its Wald interval, from lme4's beta and standard error
    se = r["se"][1]
    close(glued["state_rr"], np.exp(b1), 4)
    close(glued["state_rr_low"], np.exp(b1 - Z975 * se), 4)
    close(glued["state_rr_high"], np.exp(b1 + Z975 * se), 4)
    close(glued["state_rr_pct"], 100 * (np.exp(b1) - 1), 1)
    text = outputs_text(nb)
    assert "logLik" in text and "-427546.8" in text  # lme4: -427546.818


def test_overdispersion_ratios_match_lme4_pearson_residuals(glued):
    close(glued["od_state"], REF["state"]["overdispersion"]["ratio"], 1)
    close(glued["od_olre"], REF["olre"]["overdispersion"]["ratio"], 3)
    close(glued["od_county"], REF["county"]["overdispersion"]["ratio"], 2)
    assert REF["state"]["overdispersion"]["rdf"] == 4283


def test_olre_and_county_models_match_lme4(glued):
    olre = dict(zip(REF["olre"]["vc_grp"], REF["olre"]["vc_sdcor"], strict=True))
    close(glued["olre_sd_obs"], olre["obs"], 3)
    close(glued["olre_sd_state"], olre["stusps"], 3)
    county = dict(zip(REF["county"]["vc_grp"], REF["county"]["vc_sdcor"], strict=True))
    close(glued["county_sd_county"], county["county"], 3)
    close(glued["county_sd_state"], county["stusps"], 3)
    close(glued["county_b1"], REF["county"]["beta"][1], 4)
    for key, name in [("olre_rr", "olre"), ("county_rr", "county")]:
        close(glued[key], np.exp(REF[name]["beta"][1]), 4)
    b1, se = REF["olre"]["beta"][1], REF["olre"]["se"][1]
    close(glued["olre_rr_low"], np.exp(b1 - Z975 * se), 4)
    close(glued["olre_rr_high"], np.exp(b1 + Z975 * se), 4)
    close(glued["se_ratio"], REF["olre"]["se"][1] / REF["state"]["se"][1], 1)


def test_the_fitted_poisson_models_are_at_least_as_good_as_lme4(arrests):
    d = arrests.assign(county=arrests["stusps"] + ":" + arrests["fips"].astype(str), obs=np.arange(len(arrests)))
    f = "arrests ~ pop_pct_pov + offset(log(pop_tot)) + (1 | stusps)"
    m = mh.glmer(f, d, family="poisson")
    assert m.loglik >= REF["state"]["loglik"] - 1e-3
    np.testing.assert_allclose(m.fixef.to_numpy(), REF["state"]["beta"], atol=1e-3)
    mc = mh.glmer(f + " + (1 | county)", d, family="poisson")
    assert mc.loglik >= REF["county"]["loglik"] - 1e-3
    np.testing.assert_allclose(mc.fixef.to_numpy(), REF["county"]["beta"], atol=1e-3)
    two = d[d["stusps"].isin(["DC", "TX"])].groupby("stusps").head(1)
    rate = 1000 * mc.predict(two, type="response") / two["pop_tot"]
    np.testing.assert_allclose(rate.to_numpy(), REF["county_pred_rate"], rtol=2e-3)


def test_rate_ratio_table_and_predictions_in_the_outputs(nb, glued):
    text = outputs_text(nb)
    for name in ("state", "olre", "county"):
        b1, se = REF[name]["beta"][1], REF[name]["se"][1]
        for v in (np.exp(b1), np.exp(b1 - Z975 * se), np.exp(b1 + Z975 * se)):
            assert f"{v:.4f}" in text, (name, v)
    dc, tx = REF["county_pred_rate"]
    assert f"{dc:.2f}" in text and f"{tx:.2f}" in text
    close(glued["dc_poisson"], dc, 2)


# --------------------------------------------------------------------------- chapter 2's linear model


def test_linear_model_comparison_against_statsmodels(arrests, glued):
    import statsmodels.formula.api as smf

    fit = smf.mixedlm("violent_arrest_per1000 ~ pop_pct_pov", arrests, groups=arrests["stusps"]).fit(reml=True)
    fitted = fit.fittedvalues
    resid = arrests["violent_arrest_per1000"] - fitted
    size = pd.qcut(arrests["pop_tot"], 5, labels=False)
    sd = resid.groupby(size).std()
    close(glued["resid_sd_small"], sd.iloc[0], 2)
    close(glued["resid_sd_large"], sd.iloc[-1], 2)
    close(glued["sigma_linear"], np.sqrt(fit.scale), 2)
    assert glued["n_negative"] == int((fitted < 0).sum())
    close(glued["min_linear"], fitted.min(), 2)
    dc_row = arrests[arrests["stusps"] == "DC"].index[0]
    close(glued["dc_linear"], fitted[dc_row], 2)
    close(glued["dc_rate"], arrests.loc[dc_row, "violent_arrest_per1000"], 2)
    assert glued["dc_count"] == arrests.loc[dc_row, "arrests"]


# --------------------------------------------------------------------------- the logistic model


def test_clinic_data_summaries(glued):
    c = clinics_csv("clinics.csv")
    assert glued["n_patients"] == len(c)
    close(glued["recovered_pct"], 100 * c["recovered"].mean(), 1)


def test_logistic_fit_and_odds_ratios_match_lme4(glued, nb):
    r = REF["clinics_laplace"]
    b = dict(zip(r["beta_names"], r["beta"], strict=True))
    se = dict(zip(r["beta_names"], r["se"], strict=True))
    close(glued["logit_b1"], b["treated"], 3)
    close(glued["logit_b2"], b["severity"], 3)
    close(glued["logit_sd"], r["vc_sdcor"], 3)
    close(glued["or_treat"], np.exp(b["treated"]), 2)
    close(glued["or_treat_low"], np.exp(b["treated"] - Z975 * se["treated"]), 2)
    close(glued["or_treat_high"], np.exp(b["treated"] + Z975 * se["treated"]), 2)
    close(glued["or_sev"], np.exp(b["severity"]), 3)
    close(glued["or_conditional"], np.exp(b["treated"]), 3)
    text = outputs_text(nb)
    assert "-381.1" in text  # lme4 logLik -381.094


def test_predicted_probabilities_match_lme4(glued):
    p = REF["clinics_pred_prob"]
    for key, v in zip(["p_c001_0", "p_c001_1", "p_new_0", "p_new_1"], p, strict=True):
        close(glued[key], v, 3)
    r = REF["clinics_laplace"]
    # the new clinic's probabilities are the inverse logit of the fixed part alone
    np.testing.assert_allclose(p[2:], special.expit([r["beta"][0], r["beta"][0] + r["beta"][1]]), rtol=1e-12)


def conditional_mode(y, eta_fixed, sd):
    """Posterior mode of one clinic's effect: maximise log p(y | u) + log φ(u / sd)."""
    def negpost(u):
        eta = eta_fixed + u
        return -(y @ eta - np.logaddexp(0, eta).sum()) + 0.5 * (u / sd) ** 2
    return optimize.minimize_scalar(negpost, bounds=(-10, 10), method="bounded",
                                    options={"xatol": 1e-10}).x


def test_clinic_effect_of_c001_is_the_posterior_mode(glued):
    c = clinics_csv("clinics.csv")
    r = REF["clinics_laplace"]
    rows = c[c["clinic"] == "C001"]
    eta = r["beta"][0] + r["beta"][1] * rows["treated"] + r["beta"][2] * rows["severity"]
    u = conditional_mode(rows["recovered"].to_numpy(float), eta.to_numpy(), r["vc_sdcor"])
    close(glued["u_c001"], u, 3)


def population_average(eta, sd):
    f = lambda u: special.expit(eta + u) * stats.norm.pdf(u, scale=sd)  # noqa: E731
    return integrate.quad(f, -12 * sd, 12 * sd, epsabs=1e-13)[0]


def test_population_averaged_probabilities_by_brute_force_integral(glued):
    r = REF["clinics_laplace"]
    b0, b1, _ = r["beta"]
    p0, p1 = population_average(b0, r["vc_sdcor"]), population_average(b0 + b1, r["vc_sdcor"])
    close(glued["pa_0"], p0, 3)
    close(glued["pa_1"], p1, 3)
    close(glued["pa_diff"], p1 - p0, 3)
    close(glued["cond_diff"], special.expit(b0 + b1) - special.expit(b0), 3)
    close(glued["or_marginal"], (p1 / (1 - p1)) / (p0 / (1 - p0)), 3)
    assert glued["or_marginal"] < glued["or_conditional"]


def agq_loglik(data: pd.DataFrame, beta, sd) -> float:
    """The exact marginal log-likelihood, one brute-force integral per clinic."""
    total = 0.0
    for _, rows in data.groupby("clinic"):
        y = rows["recovered"].to_numpy(float)
        eta = beta[0] + beta[1] * rows["treated"].to_numpy() + beta[2] * rows["severity"].to_numpy()

        def f(u, eta=eta, y=y):
            e = eta + u
            return np.exp(y @ e - np.logaddexp(0, e).sum()) * stats.norm.pdf(u, scale=sd)
        total += np.log(integrate.quad(f, -12 * sd, 12 * sd, epsabs=1e-14, limit=200)[0])
    return total


@pytest.mark.parametrize("data, key", [("clinics.csv", ""), ("clinics_pairs.csv", "pairs_")])
def test_laplace_and_agq_tables(glued, nb, data, key):
    lap = REF[f"{key or 'clinics_'}laplace"]
    agq = REF[f"{key or 'clinics_'}agq25"]
    if key:
        close(glued["pairs_lap_sd"], lap["vc_sdcor"], 3, extra=1e-3)
        close(glued["pairs_agq_sd"], agq["vc_sdcor"], 3)
        close(glued["pairs_lap_b1"], lap["beta"][1], 3, extra=1e-3)
        close(glued["pairs_agq_b1"], agq["beta"][1], 3)
    else:
        close(glued["lap_sd"], lap["vc_sdcor"], 3)
        close(glued["agq_sd"], agq["vc_sdcor"], 3)
    # the AGQ column's log-likelihood is the exact integral at lme4's estimates
    exact = agq_loglik(clinics_csv(data), agq["beta"], agq["vc_sdcor"])
    assert exact == pytest.approx(agq["loglik"], abs=2e-4)
    text = outputs_text(nb)
    for v in [*agq["beta"], agq["vc_sdcor"], agq["loglik"]]:
        assert re.search(rf"(?<![\d.]){re.escape(f'{v:.3f}')}(?!\d)", text), v
    # the Laplace column: within the engine's documented 1e-3 of lme4, and a log-likelihood
    # never below lme4's
    fit = mh.glmer("recovered ~ treated + severity + (1 | clinic)", clinics_csv(data), family="binomial")
    np.testing.assert_allclose([*fit.fixef, fit.varcorr["sdcor"].iloc[0]], [*lap["beta"], lap["vc_sdcor"]], atol=1e-3)
    assert fit.loglik >= lap["loglik"] - 1e-6
    for v in [*fit.fixef, fit.varcorr["sdcor"].iloc[0], fit.loglik]:
        assert re.search(rf"(?<![\d.]){re.escape(f'{v:.3f}')}(?!\d)", text), v


# --------------------------------------------------------------------------- exercises


def test_exercise_numbers(nb):
    text = outputs_text(nb)
    b1, se = REF["olre"]["beta"][1], REF["olre"]["se"][1]
    ex1 = np.exp(10 * np.array([b1, b1 - Z975 * se, b1 + Z975 * se])).round(3)
    assert "array([" + ", ".join(f"{v:.3f}" for v in ex1) + "])" in text
    ratio = REF["state"]["overdispersion"]["ratio"]
    assert f"({ratio:.2f}, {ratio:.2f})" in text
    # exercise 4: lme4 on the same 40 large clinics; the table is (Laplace, AGQ) per row
    cell = next(c for c in nb.cells if c.cell_type == "code" and "min_patients=40" in c.source)
    rows = {}
    for line in cell.outputs[0]["data"]["text/plain"].splitlines()[1:]:
        *name, lap, agq = line.split()
        rows[" ".join(name)] = (float(lap), float(agq))
    lap, agq = REF["large_laplace"], REF["large_agq25"]
    names = [*lap["beta_names"], "clinic SD", "log-likelihood"]
    for name, vl, va in zip(names, [*lap["beta"], lap["vc_sdcor"], lap["loglik"]],
                            [*agq["beta"], agq["vc_sdcor"], agq["loglik"]], strict=True):
        close(rows[name][1], va, 3)
        close(rows[name][0], vl, 3, extra=1e-3)  # Laplace: the engine's documented 1e-3


def test_exercise_3_simulation_is_close_to_the_integral(nb):
    r = REF["clinics_laplace"]
    b0, b1, _ = r["beta"]
    exact = [population_average(b0, r["vc_sdcor"]), population_average(b0 + b1, r["vc_sdcor"])]
    rng = np.random.default_rng(8)
    u = rng.normal(0.0, r["vc_sdcor"], 200_000)
    sim = [special.expit(b0 + u).mean(), special.expit(b0 + b1 + u).mean()]
    np.testing.assert_allclose(sim, exact, atol=2e-3)
    text = outputs_text(nb)
    for s, e in zip(sim, exact, strict=True):
        assert re.search(rf"{s:.3f}\s+{e:.3f}", text), (s, e)


def test_exercise_5_correlation_with_brute_force_modes(nb):
    c = clinics_csv("clinics.csv")
    r = REF["clinics_laplace"]
    modes, truth = [], []
    for _, rows in c.groupby("clinic"):
        eta = r["beta"][0] + r["beta"][1] * rows["treated"] + r["beta"][2] * rows["severity"]
        modes.append(conditional_mode(rows["recovered"].to_numpy(float), eta.to_numpy(), r["vc_sdcor"]))
        truth.append(rows["clinic_effect"].iloc[0])
    text = outputs_text(nb)
    corr = np.corrcoef(truth, modes)[0, 1]
    assert re.search(rf"correlation\s+{corr:.3f}", text)
    assert re.search(rf"SD of predicted effects\s+{np.std(modes, ddof=1):.3f}", text)


# --------------------------------------------------------------------------- structure


def test_structure(nb):
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "google.colab" in code[0].source and "remove-cell" in code[0].metadata.get("tags", [])
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert md.startswith("# Counts and yes/no outcomes")
    assert "{doc}`notation`" in md and "{doc}`02_pooling_violent_arrests`" in md
    labels = re.findall(r"```\{exercise\}\n:label: (counts-ex-\d+)", md)
    assert len(labels) >= 4
    for lab in labels:
        assert f"```{{solution-start}} {lab}\n:class: dropdown" in md
    assert md.count("{solution-end}") == len(labels)
    figs = [c for c in code if "figure" in c.metadata.get("mystnb", {})]
    assert figs and all(c.metadata["mystnb"]["figure"].get("caption") and c.metadata["mystnb"]["image"].get("alt")
                        for c in figs)
    # no fitting or plotting code defined in the chapter beyond small helpers
    assert "import matplotlib" not in "\n".join(c.source for c in code)


def test_chapter_is_in_the_toc_and_intro():
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    assert re.search(r"^  - file: book/08_counts_and_binary\s*$", toc, re.M)
    assert "{doc}`08_counts_and_binary`" in (ROOT / "book" / "intro.md").read_text(encoding="utf-8")
