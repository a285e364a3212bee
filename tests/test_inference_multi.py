"""Inference with several grouping factors (engine v2): Satterthwaite, Kenward-Roger, profile
intervals and simulate on lme4's Penicillin (crossed) and Pastes (nested) data. References:
tests/r/inference_multi_reference.R (tight optimiser, see tests/test_satterthwaite.py) and its .Rout."""

import numpy as np
import pandas as pd
import pytest
from inference_refs import DATA

from mlmhelpers import confint, lmer, simulate
from mlmhelpers.lmertest import coef_table


@pytest.fixture(scope="module")
def penicillin():
    return lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", pd.read_csv(DATA / "penicillin.csv"))


@pytest.fixture(scope="module")
def pastes():
    return lmer("strength ~ 1 + (1 | batch / cask)", pd.read_csv(DATA / "pastes.csv"))


def test_crossed_ddf(penicillin):
    s = coef_table(penicillin, "Satterthwaite")
    k = coef_table(penicillin, "Kenward-Roger")
    assert s["df"].iloc[0] == pytest.approx(5.48709321867, rel=1e-6)
    assert s["Pr(>|t|)"].iloc[0] == pytest.approx(3.61920119196e-07, rel=1e-5)
    assert k["df"].iloc[0] == pytest.approx(5.48709227884, rel=1e-6)
    assert k["Std. Error"].iloc[0] == pytest.approx(0.808573346669, rel=1e-6)


def test_nested_ddf_exact(pastes):
    # balanced nested design: the intercept is tested against the batch stratum, df = 10 - 1
    assert coef_table(pastes, "Kenward-Roger")["df"].iloc[0] == pytest.approx(9.0, rel=1e-9)
    assert coef_table(pastes, "Satterthwaite")["df"].iloc[0] == pytest.approx(9.0, rel=1e-6)


def test_crossed_profile(penicillin):
    ci = confint(penicillin, method="profile")
    assert list(ci.index) == [".sig01", ".sig02", ".sigma", "(Intercept)"]
    ref = np.array([[0.633565787565, 1.182103984099], [1.095789265107, 3.556291910147],
                    [0.485845400178, 0.629453478509], [21.266627383064, 24.677817616172]])
    assert ci.to_numpy() == pytest.approx(ref, rel=1e-7)


def test_crossed_simulate_moments(penicillin):
    """Var(y) = σ²_plate + σ²_sample + σ²; two rows sharing only the plate covary by σ²_plate."""
    nsim = 4000
    y = simulate(penicillin, nsim=nsim, seed=8).to_numpy()
    vc = penicillin.varcorr.set_index("grp")["vcov"]
    mu = penicillin.fixef.iloc[0]
    total = vc.sum()
    d = penicillin.data
    dev = y - mu
    sq = (dev**2).mean(axis=0)  # per simulation, averaged over rows: independent across simulations
    assert abs(sq.mean() - total) < 4 * sq.std(ddof=1) / np.sqrt(nsim)
    i = 0
    j = int(np.flatnonzero((d["plate"] == d["plate"].iloc[0]) & (d["sample"] != d["sample"].iloc[0]))[0])
    prod = dev[i] * dev[j]
    assert abs(prod.mean() - vc["plate"]) < 4 * prod.std(ddof=1) / np.sqrt(nsim)


def test_crossed_bootstrap_and_pb_test(penicillin):
    from mlmhelpers import bootstrap, pb_test

    b = bootstrap(penicillin, nsim=8, seed=3)
    assert list(b.columns) == [".sig01", ".sig02", ".sigma", "(Intercept)"]
    assert np.all(np.isfinite(b.to_numpy())) and (b[[".sig01", ".sig02", ".sigma"]] >= 0).all().all()
    small = lmer("diameter ~ 1 + (1 | sample)", penicillin.data)
    res = pb_test(small, penicillin, nsim=5, seed=1)
    assert res.table.loc["LRT", "df"] == 1 and res.table.loc["LRT", "stat"] > 0
