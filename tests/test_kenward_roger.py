"""Kenward–Roger (mlmhelpers/kenward_roger.py) against pbkrtest 0.5.2 / lmerTest, a dense
from-the-definition computation, and the exact balanced-design df. See tests/test_satterthwaite.py
for why the references are the tight-optimiser fits of tests/r/inference_reference.R."""

import numpy as np
import pytest
from inference_refs import sleepstudy, with_state_poverty

from mlmhelpers import lmer
from mlmhelpers.kenward_roger import kenward_roger_info, kr_ddf
from mlmhelpers.lmertest import coef_table


@pytest.fixture(scope="module")
def sleep():
    return lmer("Reaction ~ Days + (Days | Subject)", sleepstudy())


def test_sleepstudy_balanced_exact(sleep):
    # Balanced design: KR gives exactly J - 1 = 17 and leaves vcov unchanged (pbkrtest: 17).
    assert kr_ddf(sleep, [0, 1]) == pytest.approx(17.0, rel=1e-10)
    assert kr_ddf(sleep, [1, 0]) == pytest.approx(17.0, rel=1e-10)
    info = kenward_roger_info(sleep)
    assert np.allclose(info.vcov_adj, sleep.vcov.to_numpy(), rtol=1e-9)
    ct = coef_table(sleep, "Kenward-Roger")
    assert ct["Pr(>|t|)"].to_numpy() == pytest.approx([1.17088676115e-17, 3.26378798045e-06], rel=1e-5)


def test_dense_definition(sleep):
    """pbkrtest's vcovAdj written out with n x n matrices (independent of the Woodbury code)."""
    m = lmer("Reaction ~ Days + (Days | Subject)", sleepstudy().iloc[::2])  # unbalanced: every other day
    d = m.design
    n, J = len(d.y), len(d.levels)
    Z = np.zeros((n, 2 * J))
    Z[np.arange(n), 2 * d.groups] = d.Z[:, 0]
    Z[np.arange(n), 2 * d.groups + 1] = d.Z[:, 1]
    cov = m.sigma**2 * m.sol.Lambda @ m.sol.Lambda.T
    E = [np.array([[1, 0], [0, 0]]), np.array([[0, 1], [1, 0]]), np.array([[0, 0], [0, 1]])]
    G = [Z @ np.kron(np.eye(J), e) @ Z.T for e in E] + [np.eye(n)]
    psi = [cov[0, 0], cov[1, 0], cov[1, 1], m.sigma**2]
    V = sum(p * g for p, g in zip(psi, G, strict=True))
    Vi = np.linalg.inv(V)
    X = d.X
    Phi = np.linalg.inv(X.T @ Vi @ X)
    P = [-X.T @ Vi @ g @ Vi @ X for g in G]
    Q = [[X.T @ Vi @ gi @ Vi @ gj @ Vi @ X for gj in G] for gi in G]
    IE2 = np.array([[np.trace(Vi @ gi @ Vi @ gj) - 2 * np.sum(Phi * Q[i][j]) + np.trace(Phi @ P[i] @ Phi @ P[j])
                     for j, gj in enumerate(G)] for i, gi in enumerate(G)])
    W = 2 * np.linalg.inv(IE2)
    U = sum(W[i, j] * (Q[i][j] - P[i] @ Phi @ P[j]) for i in range(4) for j in range(4))
    PhiA = Phi + 2 * Phi @ U @ Phi
    info = kenward_roger_info(m)
    assert np.allclose(info.vcov, Phi, rtol=1e-8)
    assert np.allclose(info.vcov_adj, PhiA, rtol=1e-8)
    assert np.allclose(info.W, W, rtol=1e-7)


def test_arrests_random_intercept(m_ri):
    ct = coef_table(m_ri, "Kenward-Roger")
    assert ct["Std. Error"].to_numpy() == pytest.approx([0.3878084461942, 0.0102922939753], rel=1e-7)
    assert ct["df"].to_numpy() == pytest.approx([69.8987597908, 4283.4201228316], rel=1e-6)
    assert ct["Pr(>|t|)"].to_numpy() == pytest.approx([8.74176482504e-06, 1.03008501928e-37], rel=1e-5)


def test_arrests_state_level_predictor(arrests):
    m = lmer("violent_arrest_per1000 ~ pop_pct_pov + pov_state + (1 | stusps)", with_state_poverty(arrests))
    ct = coef_table(m, "Kenward-Roger")
    assert ct["Std. Error"].to_numpy() == pytest.approx([1.4272790055739, 0.0103537317899, 0.0920880357854],
                                                        rel=1e-6)
    assert ct["df"].to_numpy() == pytest.approx([50.6497033582, 4234.6993617022, 50.4035480666], rel=1e-6)
    assert ct["Pr(>|t|)"].to_numpy() == pytest.approx([8.79384641535e-02, 1.43235861247e-37, 6.52649631207e-01],
                                                      rel=1e-5)


def test_arrests_random_slope(arrests):
    m = lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 + pop_pct_pov | stusps)", arrests)
    ct = coef_table(m, "Kenward-Roger")
    assert ct["Std. Error"].to_numpy() == pytest.approx([0.5322311734230, 0.0380249297816], rel=1e-6)
    assert ct["df"].to_numpy() == pytest.approx([46.1450800057, 44.2990330769], rel=1e-6)
    assert ct["Pr(>|t|)"].to_numpy() == pytest.approx([5.59090302970e-03, 6.93260509672e-05], rel=1e-5)


def test_ml_fit_refused(arrests):
    m = lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", arrests, REML=False)
    with pytest.raises(ValueError, match="REML"):
        coef_table(m, "Kenward-Roger")
