"""Several grouping factors against lme4 1.1-31 (values pinned by tests/r/engine_v2_reference.R).

The data sets are lme4's Penicillin, Pastes and sleepstudy, one simulated crossed data set, all
written to tests/data/ by that script, and the course's county data with county built from
stusps and fips. R is not needed to run these tests.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlmhelpers as mh

HERE = Path(__file__).parent
REF = json.loads((HERE / "r" / "engine_v2_reference.json").read_text())

MODELS = {
    "penicillin": ("diameter ~ 1 + (1 | plate) + (1 | sample)", "penicillin.csv", "Penicillin"),
    "pastes": ("strength ~ 1 + (1 | batch/cask)", "pastes.csv", "Pastes"),
    "sleep": ("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", "sleepstudy.csv", "sleepstudy"),
    "crossed": ("y ~ x + (1 + x | a) + (1 | b)", "crossed_slopes.csv", "crossed"),
    "county": ("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps/county)", None, "arrests"),
}


def load(key: str) -> pd.DataFrame:
    fname = MODELS[key][1]
    if fname is None:
        d = mh.load_arrests()
        return d.assign(county=d.stusps + "-" + d.fips.astype(str))
    return pd.read_csv(HERE / "data" / fname)


_FITS: dict = {}


def fit(key: str, reml: bool):
    if (key, reml) not in _FITS:
        formula, _, name = MODELS[key]
        _FITS[key, reml] = mh.lmer(formula, load(key), REML=reml, data_name=name)
    return _FITS[key, reml]


CASES = [(k, r) for k in MODELS for r in (True, False)]


def ref(key, reml):
    return REF[f"{key}_{'reml' if reml else 'ml'}"]


@pytest.mark.parametrize("key,reml", CASES)
def test_criterion_at_least_as_good_as_lme4(key, reml):
    m, r = fit(key, reml), ref(key, reml)
    # Ours is never worse than lme4's optimum and agrees to its printed precision.
    assert m.opt.fun <= r["crit"] + 1e-8 * abs(r["crit"])
    assert m.opt.fun == pytest.approx(r["crit"], rel=1e-9)
    assert m.converged and not m.is_singular


@pytest.mark.parametrize("key,reml", CASES)
def test_parameters_match_lme4(key, reml):
    m, r = fit(key, reml), ref(key, reml)
    np.testing.assert_allclose(m.theta.to_numpy(), r["theta"], rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(m.fixef.to_numpy(), list(r["fixef"].values()), rtol=1e-5)
    assert m.sigma == pytest.approx(r["sigma"], rel=1e-5)
    np.testing.assert_allclose(m.vcov.to_numpy(), np.array(r["vcov"]), rtol=1e-4)
    vc = m.varcorr
    assert list(vc.grp) == r["varcorr"]["grp"]
    np.testing.assert_allclose(vc.sdcor.to_numpy(), r["varcorr"]["sdcor"], rtol=1e-4)
    assert dict(m.ngroups) == r["ngrps"]
    assert m.loglik == pytest.approx(r["logLik"], rel=1e-9)
    assert m.aic == pytest.approx(r["AIC"], rel=1e-9) and m.bic == pytest.approx(r["BIC"], rel=1e-9)


@pytest.mark.parametrize("key,reml", CASES)
def test_ranef_and_condsd_match_lme4(key, reml):
    m, r = fit(key, reml), ref(key, reml)
    rd = pd.DataFrame(r["ranef"])
    re_all = mh.ranef(m) if len(m.terms) > 1 else {m.terms[0].name: mh.ranef(m)}
    se_all = mh.se_ranef(m) if len(m.terms) > 1 else {m.terms[0].name: mh.se_ranef(m)}
    assert list(re_all) == list(dict.fromkeys(rd.grpvar))  # lme4's order of the factors
    for (g, term), part in rd.groupby(["grpvar", "term"], sort=False):
        ours = re_all[g][term]
        assert [str(v) for v in ours.index] == list(part.grp)  # lme4's order of the levels
        scale = np.abs(part.condval).max()
        np.testing.assert_allclose(ours.to_numpy(), part.condval, rtol=1e-4, atol=1e-4 * scale)
        np.testing.assert_allclose(se_all[g][term].to_numpy(), part.condsd, rtol=1e-4)


def _block(lines, start):
    i = lines.index(start)
    j = next(k for k in range(i, len(lines)) if lines[k].startswith("Number of obs"))
    return lines[i:j + 1]


def _same_table_line(a: str, b: str) -> bool:
    ta, tb = a.split(), b.split()
    if len(ta) != len(tb):
        return False
    for x, y in zip(ta, tb, strict=True):
        try:
            if not np.isclose(float(x), float(y), rtol=3e-4, atol=1e-4):
                return False
        except ValueError:
            if x != y:
                return False
    return True


@pytest.mark.parametrize("key,reml", CASES)
def test_summary_random_effects_block_is_lme4s(key, reml):
    """The 'Random effects:' block (every group line) and the groups line, as lme4 prints them.

    Names, labels (g, g.1, nested b:a) and the groups line must be identical; the numbers agree
    to the 4th digit (lme4 stops its optimiser a little before the optimum ours reaches).
    """
    m, r = fit(key, reml), ref(key, reml)
    ours = _block([s.rstrip() for s in str(m.summary()).split("\n")], "Random effects:")
    theirs = _block([s.rstrip() for s in r["summary"]], "Random effects:")
    assert len(ours) == len(theirs)
    assert ours[-1] == theirs[-1]  # Number of obs: …, groups: …
    for a, b in zip(ours[:-1], theirs[:-1], strict=True):
        assert _same_table_line(a, b), (a, b)
    # column positions: each line's label starts where lme4's does
    assert [len(s) - len(s.lstrip()) for s in ours] == [len(s) - len(s.lstrip()) for s in theirs]


def test_published_values():
    """lme4's published results (issue 11): Penicillin and Pastes."""
    p = fit("penicillin", True)
    assert round(p.reml_criterion, 4) == 330.8606
    assert [round(v, 4) for v in p.varcorr.sdcor] == [0.8467, 1.9316, 0.5499]
    assert round(fit("penicillin", False).deviance, 8) == 332.18834867
    q = fit("pastes", True)
    assert round(q.reml_criterion, 4) == 246.9907
    assert [round(v, 4) for v in q.varcorr.sdcor] == [2.9041, 1.2874, 0.8234]
    assert round(fit("pastes", False).deviance, 8) == 247.99446586


def test_county_groups_line_and_order():
    m = fit("county", True)
    assert "Number of obs: 4286, groups:  county:stusps, 2729; stusps, 51" in str(m.summary())
    assert list(mh.ranef(m)) == ["county:stusps", "stusps"]
    assert mh.ranef(m, "stusps").shape == (51, 1)
    assert list(mh.ranef(m)["county:stusps"].index[:3]) == ref("county", True)["ranef"]["grp"][:3]


def test_nested_predict_new_county_gets_its_states_effect():
    m = fit("county", True)
    tx = load("county").query("stusps == 'TX'").county.iloc[0]
    new = pd.DataFrame({"pop_pct_pov": [15.0, 15.0, 15.0], "stusps": ["TX", "TX", "ZZ"],
                        "county": ["TX-999", tx, "ZZ-1"]})
    with pytest.raises(ValueError, match="New level"):
        m.predict(new)
    p = m.predict(new, allow_new_levels=True)
    fe = m.fixef["(Intercept)"] + 15 * m.fixef["pop_pct_pov"]
    state = mh.ranef(m, "stusps").loc["TX", "(Intercept)"]
    county = mh.ranef(m, "county:stusps").loc[f"{tx}:TX", "(Intercept)"]
    assert p.iloc[0] == pytest.approx(fe + state)
    assert p.iloc[1] == pytest.approx(fe + state + county)
    assert p.iloc[2] == pytest.approx(fe)
    only_state = m.predict(new, re_form="~(1 | stusps)", allow_new_levels=True)
    assert only_state.iloc[1] == pytest.approx(fe + state)
    np.testing.assert_allclose(m.predict(), m.fitted)


def test_two_grouping_factors_accessors():
    m = fit("penicillin", True)
    assert isinstance(m.ranef, dict) and list(m.ranef) == ["plate", "sample"]
    assert isinstance(m.coef, dict) and m.coef["sample"].shape == (6, 1)
    assert m.coef["plate"].loc["a", "(Intercept)"] == pytest.approx(
        m.fixef.iloc[0] + m.ranef["plate"].loc["a", "(Intercept)"])
    with pytest.raises(ValueError, match="not a grouping factor"):
        mh.ranef(m, "nope")
    assert not mh.is_singular(m)


def test_tidy_has_broom_mixed_effect_and_group_columns():
    m = fit("pastes", True)
    t = mh.tidy(m, effects=["fixed", "ran_pars", "ran_vals", "ran_coefs"])
    pars = t[t.effect == "ran_pars"]
    assert list(pars.group) == ["cask:batch", "batch", "Residual"]
    assert list(pars.term) == ["sd__(Intercept)", "sd__(Intercept)", "sd__Observation"]
    vals = t[t.effect == "ran_vals"]
    assert vals.groupby("group", sort=False).size().to_dict() == {"cask:batch": 30, "batch": 10}
    row = vals[(vals.group == "batch") & (vals.level == "A")].iloc[0]
    assert row.estimate == pytest.approx(mh.ranef(m, "batch").loc["A", "(Intercept)"])
    assert row.std_error == pytest.approx(mh.se_ranef(m, "batch").loc["A", "(Intercept)"])
    assert set(t[t.effect == "ran_coefs"].group) == {"cask:batch", "batch"}


def test_icc_sums_the_variances_of_every_factor():
    m = fit("penicillin", True)
    v = m.varcorr.vcov.to_numpy()  # plate, sample, residual
    assert mh.icc(m) == pytest.approx((v[0] + v[1]) / v.sum(), rel=1e-12)
    by = mh.icc(m, by_group=True)
    assert list(by.index) == ["plate", "sample"]
    np.testing.assert_allclose(by.to_numpy(), v[:2] / v.sum(), rtol=1e-12)


def test_anova_refits_models_with_several_factors():
    d = load("county")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m0 = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", d)
    m1 = fit("county", True)
    tab = mh.anova(m0, m1)
    assert tab["deviance"].iloc[1] == pytest.approx(ref("county", False)["crit"], rel=1e-9)
    assert tab["Df"].iloc[1] == 1 and tab["Chisq"].iloc[1] > 1000


def test_predict_interval_for_a_new_county_in_a_known_state():
    m = fit("county", True)
    tx = load("county").query("stusps == 'TX'").county.iloc[0]
    new = pd.DataFrame({"pop_pct_pov": [15.0, 15.0], "stusps": ["TX", "TX"], "county": [tx, "TX-new"]})
    pi = mh.predict_interval(m, new, allow_new_levels=True, n_sims=2000, seed=1)
    np.testing.assert_allclose(pi["fit"], m.predict(new, allow_new_levels=True))
    width = (pi.upper - pi.lower).to_numpy()
    assert width[1] > width[0]  # a new county's effect is unknown: a wider interval


def test_caterpillar_per_factor():
    from mlmhelpers.plots import plot_caterpillar

    m = fit("pastes", True)
    with pytest.raises(ValueError, match="choose one with group="):
        plot_caterpillar(m)
    ax = plot_caterpillar(m, group="batch")
    assert len(ax.get_yticklabels()) == 10
    with pytest.raises(ValueError, match="not a grouping factor"):
        plot_caterpillar(m, group="cask")


def test_one_factor_api_is_unchanged():
    m = fit("sleep", True)  # (1 | Subject) + (0 + Days | Subject): one factor, two blocks
    assert isinstance(m.ranef, pd.DataFrame) and list(m.ranef.columns) == ["(Intercept)", "Days"]
    assert isinstance(m.coef, pd.DataFrame) and m.condvar.shape == (18, 2, 2)
    assert list(m.varcorr.grp) == ["Subject", "Subject.1", "Residual"]
    assert m.design.group_name == "Subject"
    with pytest.raises(ValueError, match="use design.terms"):
        fit("pastes", True).design.group_name


def test_coef_intervals_per_factor():
    m = fit("pastes", True)
    with pytest.raises(ValueError, match="choose one with group="):
        mh.coef_intervals(m)
    ci = mh.coef_intervals(m, group="batch")
    assert ci.shape == (10, 4)
    assert ci.loc["A", "estimate"] == pytest.approx(mh.coef(m, "batch").loc["A", "(Intercept)"])
    assert ci.loc["A", "std_error"] == pytest.approx(mh.se_ranef(m, "batch").loc["A", "(Intercept)"])
