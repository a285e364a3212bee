"""contest(), the lmerTest coefficient table, anova(m) type III, summary(ddf=) and tidy(ddf=)
against lmerTest 3.1-3 (tests/r/inference_reference.R, tight-optimiser fits)."""

import warnings

import numpy as np
import pandas as pd
import pytest
from inference_refs import sleepstudy, with_state_poverty

import mlmhelpers as mh
from mlmhelpers import anova, contest, lmer, tidy

L2 = np.array([[0, 0, 1, -1, 0], [0, 0, 0, 0, 1.0]])


@pytest.fixture(scope="module")
def band(arrests):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one row with pop_pct_pov = 0 falls outside cut()'s bands (R: NA too)
        return lmer("violent_arrest_per1000 ~ pop_pct_pov + pov_band + factor(year) + (1 | stusps)",
                    with_state_poverty(arrests))


def test_anova_type3_satterthwaite(band):
    a = anova(band)
    assert list(a.index) == ["pop_pct_pov", "pov_band", "factor(year)"]
    assert list(a.columns) == ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]
    assert a["NumDF"].tolist() == [1, 2, 1]
    assert a["Sum Sq"].to_numpy() == pytest.approx([907.33303917, 35.97816580, 107.167674894], rel=1e-6)
    assert a["DenDF"].to_numpy() == pytest.approx([4249.35717696, 4248.92161802, 4229.17857267], rel=1e-6)
    assert a["F value"].to_numpy() == pytest.approx([64.00534, 1.26899, 7.55985], abs=5e-6)
    assert a["Pr(>F)"].to_numpy() == pytest.approx([1.587e-15, 0.2812216, 0.0059936], rel=1e-4)


def test_anova_type3_kenward_roger(band):
    a = anova(band, ddf="Kenward-Roger")
    assert a["Sum Sq"].to_numpy() == pytest.approx([907.090076253, 35.962183941, 107.158593707], rel=1e-6)
    assert a["DenDF"].to_numpy() == pytest.approx([4255.56802437, 4254.18293852, 4239.44028567], rel=1e-6)
    assert a["F value"].to_numpy() == pytest.approx([63.98820, 1.26843, 7.55921], abs=5e-6)
    assert a["Pr(>F)"].to_numpy() == pytest.approx([1.6001e-15, 0.2813800, 0.0059957], rel=1e-4)


def test_contest_joint_and_one_dimensional(band):
    s = contest(band, L2)
    assert s["NumDF"].iloc[0] == 2
    assert s[["Sum Sq", "DenDF", "F value", "Pr(>F)"]].iloc[0].to_numpy() == pytest.approx(
        [107.769753638, 4228.5154495, 3.80116221503, 0.0224211783262], rel=1e-6)
    k = contest(band, L2, ddf="Kenward-Roger")
    assert k[["Sum Sq", "DenDF", "F value", "Pr(>F)"]].iloc[0].to_numpy() == pytest.approx(
        [107.760942663, 4238.9026481, 3.80085143846, 0.022427947563], rel=1e-6)
    t = contest(band, L2, joint=False, confint=True)
    assert list(t.columns) == ["Estimate", "Std. Error", "df", "t value", "lower", "upper", "Pr(>|t|)"]
    assert t["df"].to_numpy() == pytest.approx([4227.97081899, 4229.17857267], rel=1e-6)
    assert t["lower"].to_numpy() == pytest.approx([-0.467207409609, -0.553094161407], rel=1e-6)
    assert t["Pr(>|t|)"].to_numpy() == pytest.approx([0.90361096700942, 0.00599364930727], rel=1e-6)


def test_contest_one_row_f_equals_t_squared_and_named_columns(band):
    by_name = contest(band, pd.Series({"pov_band(10.0, 20.0]": 1.0, "pov_band(20.0, inf]": -1.0}), joint=False)
    by_pos = contest(band, L2[0], joint=False)
    pd.testing.assert_frame_equal(by_name, by_pos)
    f = contest(band, L2[0])
    assert f["F value"].iloc[0] == pytest.approx(by_pos["t value"].iloc[0] ** 2, rel=1e-12)


def test_contest_rhs_shifts_the_hypothesis(m_ri):
    b = m_ri.fixef["pop_pct_pov"]
    at_estimate = contest(m_ri, [0, 1], rhs=b, joint=False)
    assert at_estimate["t value"].iloc[0] == pytest.approx(0.0, abs=1e-12)
    f = contest(m_ri, [0, 1], rhs=b)
    assert f["F value"].iloc[0] == pytest.approx(0.0, abs=1e-12)


def test_bad_input(m_ri, arrests):
    with pytest.raises(ValueError, match="2 columns"):
        contest(m_ri, [1, 0, 0])
    with pytest.raises(ValueError, match="not fixed effects"):
        contest(m_ri, pd.Series({"nope": 1.0}))
    with pytest.raises(ValueError, match="Satterthwaite"):
        contest(m_ri, [0, 1], ddf="Wald")
    with pytest.raises(ValueError, match="NaN"):
        contest(m_ri, [np.nan, 1])
    with pytest.raises(TypeError, match="lmer"):
        contest(mh.lm("violent_arrest_per1000 ~ pop_pct_pov", arrests), [0, 1])


def test_summary_ddf_prints_lmertest_table():
    m = lmer("Reaction ~ Days + (Days | Subject)", sleepstudy(), data_name="sleepstudy")
    text = str(m.summary(ddf="Satterthwaite"))
    assert text.startswith("Linear mixed model fit by REML. t-tests use Satterthwaite's method ['lmerModLmerTest']")
    expected = """Fixed effects:
            Estimate Std. Error      df t value Pr(>|t|)
(Intercept)  251.405      6.825  17.000  36.838  < 2e-16 ***
Days          10.467      1.546  17.000   6.771 3.26e-06 ***
---
Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1"""
    assert expected in text
    assert "Kenward-Roger's method" in str(m.summary(ddf="Kenward-Roger"))
    assert "t-tests" not in str(m.summary())


def test_summary_ddf_scientific_columns(m_ri):
    text = str(m_ri.summary(ddf="Satterthwaite"))
    assert """             Estimate Std. Error        df t value Pr(>|t|)
(Intercept) 1.861e+00  3.877e-01 5.608e+01   4.801 1.22e-05 ***
pop_pct_pov 1.334e-01  1.029e-02 4.283e+03  12.968  < 2e-16 ***""" in text


def test_tidy_ddf(m_ri):
    t = tidy(m_ri, ddf="Kenward-Roger", conf_int=True)
    fixed = t[t.effect == "fixed"]
    assert list(t.columns) == ["effect", "group", "term", "estimate", "std_error", "statistic", "df", "p_value",
                               "conf_low", "conf_high"]
    assert fixed["df"].to_numpy() == pytest.approx([69.8987597908, 4283.4201228316], rel=1e-6)
    assert fixed["std_error"].to_numpy() == pytest.approx([0.3878084461942, 0.0102922939753], rel=1e-7)
    assert "df" not in tidy(m_ri).columns


def test_coming_from_r_maps_the_inference_calls():
    """book/coming_from_r.md has a row for each R inference call, naming a function that exists
    (test_chapter_how_lmer_works.py checks every mh.* name of the table against __all__)."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "book" / "coming_from_r.md").read_text(encoding="utf-8")
    rows = text.split("\n* - ")
    for r_call, py in [("summary(m, ddf = \"Kenward-Roger\")", "m.summary(ddf="), ("anova(m)", "mh.anova(m)"),
                       ("contest(m, L", "mh.contest("), ("confint(m)", "mh.confint(m, method=\"profile\")"),
                       ("method = \"boot\"", "method=\"boot\""), ("bootMer(", "mh.bootstrap("),
                       ("simulate(", "mh.simulate("), ("PBmodcomp(", "mh.pb_test(")]:
        assert any(r_call in row.split("\n")[0] and py in row for row in rows), (r_call, py)
    for name in ["contest", "profile", "bootstrap", "simulate", "pb_test", "confint", "anova", "tidy"]:
        assert name in mh.__all__


def test_anova_type3_with_interactions(arrests):
    """lmerTest's type III contrasts for terms contained in interactions (tests/r/inference_type3_reference.R)."""
    d = with_state_poverty(arrests)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = lmer("violent_arrest_per1000 ~ pop_pct_pov * factor(year) + pov_band + (1 | stusps)", d)
        m2 = lmer("violent_arrest_per1000 ~ pov_band * factor(year) + (1 | stusps)", d)
    a = anova(m)
    assert list(a.index) == ["pop_pct_pov", "factor(year)", "pov_band", "pop_pct_pov:factor(year)"]
    assert a["Sum Sq"].to_numpy() == pytest.approx([912.650527472, 0.334586438, 38.350616587, 12.852102404], rel=1e-6)
    assert a["DenDF"].to_numpy() == pytest.approx([4248.59067383, 4227.70780166, 4248.06794513, 4223.41304675],
                                                  rel=1e-6)
    k = anova(m, ddf="Kenward-Roger")
    assert k["Sum Sq"].to_numpy() == pytest.approx([912.404139058, 0.334561393, 38.333492324, 12.851556331], rel=1e-6)
    assert k["DenDF"].to_numpy() == pytest.approx([4254.75650365, 4238.06707395, 4253.28722975, 4234.63061011],
                                                  rel=1e-6)
    b = anova(m2)
    assert b["NumDF"].tolist() == [2, 1, 2]
    assert b["Sum Sq"].to_numpy() == pytest.approx([1532.658881242, 39.837399208, 11.507317505], rel=1e-6)
    assert b["DenDF"].to_numpy() == pytest.approx([4264.34173505, 4225.80334266, 4220.56784262], rel=1e-6)
