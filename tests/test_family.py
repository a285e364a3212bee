"""Families and links against R's family objects (values from tests/r/family_reference.R)."""

import numpy as np
import pytest

import mlmhelpers as mh
from mlmhelpers.family import get_family

ETA = np.array([-40, -31, -5, -1, 0, 0.5, 3, 31, 40], dtype=float)
R = {  # R 4.x: binomial(link)$linkinv(eta), $mu.eta(eta)
    ("logit", "linkinv"): [2.2204460492503126e-16, 2.2204460492503126e-16, 0.0066928509242848563, 0.2689414213699951,
                           0.5, 0.62245933120185459, 0.95257412682243325, 0.99999999999999978, 0.99999999999999978],
    ("logit", "mu_eta"): [2.2204460492503131e-16, 2.2204460492503131e-16, 0.0066480566707901563, 0.19661193324148188,
                          0.25, 0.23500371220159449, 0.04517665973091213, 2.2204460492503131e-16,
                          2.2204460492503131e-16],
    ("probit", "linkinv"): [2.2204460492503284e-16, 2.2204460492503284e-16, 2.8665157187919391e-07,
                            0.15865525393145705, 0.5, 0.69146246127401301, 0.9986501019683699,
                            0.99999999999999978, 0.99999999999999978],
    ("probit", "mu_eta"): [2.2204460492503131e-16, 2.2204460492503131e-16, 1.4867195147342977e-06,
                           0.24197072451914337, 0.3989422804014327, 0.35206532676429952, 0.0044318484119380075,
                           2.2204460492503131e-16, 2.2204460492503131e-16],
    ("cloglog", "linkinv"): [2.2204460492503131e-16, 3.4424771084699174e-14, 0.0067152979321585104,
                             0.30779937244465366, 0.63212055882855767, 0.80770435445203503, 0.99999999810782125,
                             0.99999999999999978, 0.99999999999999978],
    ("cloglog", "mu_eta"): [2.2204460492503131e-16, 3.4424771084698581e-14, 0.0066926996775355145,
                            0.25464638004358253, 0.36787944117144233, 0.31704192107794216, 3.8005425040443575e-08,
                            2.2204460492503131e-16, 2.2204460492503131e-16],
}


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_binomial_links_match_r(link):
    fam = mh.binomial(link)
    np.testing.assert_allclose(fam.linkinv(ETA), R[(link, "linkinv")], rtol=1e-12, atol=0)
    np.testing.assert_allclose(fam.mu_eta(ETA), R[(link, "mu_eta")], rtol=1e-12, atol=0)
    mu, me = fam.linkinv_and_mu_eta(ETA)
    np.testing.assert_allclose(mu, R[(link, "linkinv")], rtol=1e-12)
    np.testing.assert_allclose(me, R[(link, "mu_eta")], rtol=1e-12)


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_link_and_inverse_round_trip(link):
    fam = mh.binomial(link)
    mu = np.array([1e-6, 0.1, 0.5, 0.9, 1 - 1e-6])
    np.testing.assert_allclose(fam.linkinv(fam.linkfun(mu)), mu, rtol=1e-9)
    # mu_eta is the derivative of linkinv
    eta = np.array([-3.0, -0.5, 0.0, 0.7, 2.0])
    h = 1e-6
    np.testing.assert_allclose(fam.mu_eta(eta), (fam.linkinv(eta + h) - fam.linkinv(eta - h)) / (2 * h), rtol=1e-7)


@pytest.mark.parametrize("family,link", [("binomial", "logit"), ("binomial", "probit"), ("binomial", "cloglog"),
                                         ("poisson", "log")])
def test_second_derivatives_are_derivatives(family, link):
    # mu_eta_deriv = d(mu_eta)/d(eta) and variance_deriv = dV/dmu, by central differences
    fam = mh.binomial(link) if family == "binomial" else mh.poisson()
    eta = np.array([-3.0, -0.5, 0.0, 0.7, 2.0])
    h = 1e-5
    np.testing.assert_allclose(fam.link.mu_eta_deriv(eta), (fam.mu_eta(eta + h) - fam.mu_eta(eta - h)) / (2 * h),
                               rtol=1e-7, atol=1e-10)  # rounding of the difference: ~1e-11
    mu = fam.linkinv(eta)
    np.testing.assert_allclose(fam.variance_deriv(mu), (fam.variance(mu + h * 1e-2) - fam.variance(mu - h * 1e-2))
                               / (2 * h * 1e-2), rtol=1e-7, atol=1e-8)  # rounding of the difference: ~1e-10
    # beyond R's guards mu_eta is held constant, so its derivative is 0 there
    if link in ("logit", "probit", "cloglog"):
        assert fam.link.mu_eta_deriv(np.array([40.0]))[0] == 0.0


def test_poisson_matches_r():
    fam = mh.poisson()
    np.testing.assert_allclose(fam.linkinv(np.array([-800, -1, 0, 2.5])),
                               [2.2204460492503131e-16, 0.36787944117144233, 1, 12.182493960703473], rtol=1e-14)
    y, mu, wt = np.array([0, 1, 3, 10.0]), np.array([0.5, 1.2, 2.5, 12]), np.array([1, 1, 2, 1.0])
    np.testing.assert_allclose(fam.dev_resids(y, mu, wt),
                               [1, 0.035356886412090727, 0.18785868152745522, 0.35356886412090827], rtol=1e-12)
    assert fam.aic(y, mu, wt) == pytest.approx(13.717598131225476, rel=1e-13)


def test_binomial_deviance_and_aic_match_r():
    fam = mh.binomial()
    y, mu, wt = np.array([0, 0.25, 1, 0.5]), np.array([0.1, 0.3, 0.8, 0.5]), np.array([1, 4, 3, 2.0])
    np.testing.assert_allclose(fam.dev_resids(y, mu, wt),
                               [0.2107210313156527, 0.049314115333799313, 1.3388613078852587, 0], atol=1e-15)
    assert fam.aic(y, mu, wt) == pytest.approx(4.7112832503652866, rel=1e-13)
    # −2 log p(y | μ) = deviance residual + the saturated constant
    np.testing.assert_allclose(fam.loglik_terms(y, mu, wt),
                               fam.dev_resids(y, mu, wt) + fam.loglik_terms(y, y, wt), rtol=1e-12)


@pytest.mark.parametrize("fam", [mh.binomial("logit"), mh.binomial("probit"), mh.binomial("cloglog"), mh.poisson()])
def test_kernel_inside_equals_kernel_where_linkinv_lands(fam):
    """PIRLS uses kernel_inside (y log μ) for speed: xlogy's kernel to rounding (NumPy's vectorised
    log may differ from libm's by an ulp), y = 0 included, for every μ the inverse link can return
    (extreme η included): finite wherever the kernel is."""
    eta = np.concatenate([ETA, np.linspace(-45, 45, 181), [700.0, -700.0]]) if fam.family == "binomial" \
        else np.concatenate([np.linspace(-45, 45, 181), [-800.0, 800.0]])
    mu = fam.linkinv(eta)
    mu_fast, _ = fam.linkinv_and_mu_eta(eta)
    ys = [0.0, 1.0, 0.3] if fam.family == "binomial" else [0.0, 1.0, 7.0, 2.5]
    for y in ys:
        yv = np.full_like(mu, y)
        for m in (mu, mu_fast):
            np.testing.assert_allclose(fam.kernel_inside(yv, m), fam.kernel(yv, m), rtol=1e-15, atol=0)


def test_no_overflow_warnings_at_extreme_eta():
    eta = np.array([-1e6, -800.0, 800.0, 1e6])
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        for fam in (mh.binomial("logit"), mh.binomial("probit"), mh.binomial("cloglog")):
            mu = fam.linkinv(eta)
            assert np.all((mu > 0) & (mu < 1))
            assert np.all(fam.mu_eta(eta) > 0)


def test_unknown_family_and_link_are_clear_errors():
    with pytest.raises(ValueError, match="Unknown family 'gaussian'"):
        get_family("gaussian")
    with pytest.raises(ValueError, match="Link 'log' is not available for the binomial family"):
        mh.binomial("log")
    with pytest.raises(ValueError, match="Link 'identity' is not available for the poisson family"):
        mh.poisson("identity")
    with pytest.raises(TypeError, match="family must be"):
        get_family(3)
    assert get_family("poisson") == mh.poisson() and get_family(mh.binomial) == mh.binomial()
    assert mh.binomial("probit") != mh.binomial()
