"""The internal LmerResult methods of CONTRACT.md section 2 (_pls_at, _refit, _zlambda, n_theta)."""

import numpy as np
import pytest

from mlmhelpers import lmer


@pytest.fixture(scope="module")
def slope(arrests):
    return lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 + pop_pct_pov | stusps)", arrests)


def test_pls_at_optimum_reproduces_fit(slope):
    sol = slope._pls_at(slope.sol.theta)
    assert np.allclose(sol.beta, slope.fixef.to_numpy(), rtol=1e-12)
    assert sol.deviance(True) == pytest.approx(slope.reml_criterion, rel=1e-12)
    assert slope.n_theta == 3 and slope.converged


def test_zlambda_is_z_lambda_u(slope):
    q = slope.sol.u.size
    Z = slope._zlambda(slope.tmap.theta0, np.eye(q))  # Λ = I: Z itself
    lam = slope.tmap.Lambda(slope.sol.theta)
    d = slope.design
    dense = np.zeros((slope.nobs, q))
    for a in range(d.Z.shape[1]):
        dense[np.arange(slope.nobs), d.groups * d.Z.shape[1] + a] = d.Z[:, a]
    assert np.allclose(Z, dense)
    big = np.kron(np.eye(len(d.levels)), lam)
    u = np.random.default_rng(1).normal(size=(q, 3))
    assert np.allclose(slope._zlambda(slope.sol.theta, u), dense @ big @ u)
    assert np.allclose(slope._zlambda(slope.sol.theta, slope.sol.u.ravel()),
                       slope.fitted.to_numpy() - d.X @ slope.sol.beta)


def test_refit_same_data_and_new_response(slope, arrests):
    again = slope._refit()
    assert np.allclose(again.sol.theta, slope.sol.theta, atol=1e-6)
    y = slope.design.y * 2 + 1
    new = slope._refit(y=y)
    direct = lmer("y2 ~ pop_pct_pov + (1 + pop_pct_pov | stusps)", arrests.assign(y2=arrests.violent_arrest_per1000 * 2 + 1))
    assert new.reml_criterion == pytest.approx(direct.reml_criterion, abs=1e-6)
    assert np.allclose(new.fixef.to_numpy(), direct.fixef.to_numpy(), rtol=1e-6)
    ml = slope._refit(REML=False, X=slope.design.X[:, :1])
    assert not ml.REML and list(ml.fixef.index) == ["X1"]
