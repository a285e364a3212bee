"""GLM families and links, as R's ``family`` objects (``binomial()``, ``poisson()``).

A :class:`Family` carries what a generalized linear (mixed) model needs from
its response distribution and link: ``linkfun`` (g), ``linkinv`` (g⁻¹),
``mu_eta`` (dμ/dη), ``variance`` (V(μ)), ``dev_resids`` and ``aic``, with
R's definitions and R's numerical guards (the inverse links are clamped so
that μ stays strictly inside the range of the mean and dμ/dη never reaches 0,
exactly as R's ``make.link`` and ``binomial()`` do). ``aic`` is R's family
``aic``: −2 × the conditional log-likelihood, constants included, which is
what lme4 adds to the penalty and log-determinant in the Laplace deviance.

Links: ``logit``, ``probit`` and ``cloglog`` for the binomial family, ``log``
for the Poisson family.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

__all__ = ["Link", "Family", "binomial", "poisson", "get_family"]

_EPS = np.finfo(float).eps
_THRESH = 30.0  # R's logit link: exp() is not taken beyond |eta| > 30
_INVEPS = 1.0 / _EPS
_PROBIT_THRESH = -stats.norm.ppf(_EPS)  # R: -qnorm(.Machine$double.eps) = 8.125891...


@dataclass(frozen=True)
class Link:
    """A link function g with its inverse and derivative, as R's ``make.link(name)``."""

    name: str
    linkfun: Callable[[np.ndarray], np.ndarray]
    linkinv: Callable[[np.ndarray], np.ndarray]
    mu_eta: Callable[[np.ndarray], np.ndarray]
    #: d²μ/dη², the derivative of ``mu_eta`` (0 where R's guards hold ``mu_eta`` constant);
    #: not in R's link objects: the exact gradient of glmer's Laplace deviance needs it.
    mu_eta_deriv: Callable[[np.ndarray], np.ndarray]


def _logit_linkinv(eta):
    eta = np.asarray(eta, dtype=float)
    # R's C code: exp(eta), replaced by eps below eta = -30 and by 1/eps above 30; tmp / (1 + tmp).
    tmp = np.exp(np.clip(eta, -_THRESH, _THRESH))
    if np.any(np.abs(eta) > _THRESH):
        tmp = np.where(eta < -_THRESH, _EPS, np.where(eta > _THRESH, _INVEPS, tmp))
    return tmp / (1.0 + tmp)


def _logit_mu_eta(eta):
    eta = np.asarray(eta, dtype=float)
    e = np.exp(-np.abs(np.clip(eta, -_THRESH, _THRESH)))
    val = e / (1.0 + e) ** 2  # symmetric: exp(eta) / (1 + exp(eta))^2
    if np.any(np.abs(eta) > _THRESH):
        val = np.where(np.abs(eta) > _THRESH, _EPS, val)
    return val


def _probit_linkinv(eta):
    return special.ndtr(np.clip(np.asarray(eta, dtype=float), -_PROBIT_THRESH, _PROBIT_THRESH))


def _probit_mu_eta(eta):
    return np.maximum(stats.norm.pdf(np.asarray(eta, dtype=float)), _EPS)


def _cloglog_linkinv(eta):
    eta = np.asarray(eta, dtype=float)
    return np.clip(-np.expm1(-np.exp(np.minimum(eta, 700.0))), _EPS, 1.0 - _EPS)


def _cloglog_mu_eta(eta):
    eta = np.minimum(np.asarray(eta, dtype=float), 700.0)
    return np.maximum(np.exp(eta - np.exp(eta)), _EPS)


def _logit_mu_eta_deriv(eta):
    eta = np.asarray(eta, dtype=float)
    mu = _logit_linkinv(eta)
    return np.where(np.abs(eta) > _THRESH, 0.0, mu * (1.0 - mu) * (1.0 - 2.0 * mu))


def _probit_mu_eta_deriv(eta):
    eta = np.asarray(eta, dtype=float)
    pdf = stats.norm.pdf(eta)
    return np.where(pdf > _EPS, -eta * pdf, 0.0)


def _cloglog_mu_eta_deriv(eta):
    eta = np.asarray(eta, dtype=float)
    e = np.exp(np.minimum(eta, 700.0))
    me = np.exp(np.minimum(eta, 700.0) - e)
    return np.where(me > _EPS, me * (1.0 - e), 0.0)


_LOG_MAX = float(np.log(np.finfo(float).max))


def _log_linkinv(eta):
    # R: pmax(exp(eta), eps); exp is capped at the largest float instead of overflowing to Inf.
    return np.maximum(np.exp(np.minimum(np.asarray(eta, dtype=float), _LOG_MAX)), _EPS)


LINKS: dict[str, Link] = {
    "logit": Link("logit", special.logit, _logit_linkinv, _logit_mu_eta, _logit_mu_eta_deriv),
    "probit": Link("probit", lambda mu: special.ndtri(np.asarray(mu, dtype=float)), _probit_linkinv, _probit_mu_eta,
                   _probit_mu_eta_deriv),
    "cloglog": Link("cloglog", lambda mu: np.log(-np.log1p(-np.asarray(mu, dtype=float))),
                    _cloglog_linkinv, _cloglog_mu_eta, _cloglog_mu_eta_deriv),
    "log": Link("log", lambda mu: np.log(np.asarray(mu, dtype=float)), _log_linkinv, _log_linkinv, _log_linkinv),
}


class Family:
    """A GLM family: distribution of the response given its mean, and a link.

    Use :func:`binomial` or :func:`poisson` to make one. The methods take and
    return NumPy arrays and follow R's family objects of the same names
    (``linkfun``, ``linkinv``, ``mu.eta``, ``variance``, ``dev.resids``,
    ``aic``), with ``.`` written ``_``.
    """

    family: str = ""
    _links: tuple[str, ...] = ()

    def __init__(self, link: str) -> None:
        if not isinstance(link, str) or link not in self._links:
            raise ValueError(
                f"Link {link!r} is not available for the {self.family} family; "
                f"choose one of {', '.join(repr(k) for k in self._links)}."
            )
        self.link = LINKS[link]

    # link -----------------------------------------------------------------
    def linkfun(self, mu: np.ndarray) -> np.ndarray:
        """η = g(μ)."""
        return self.link.linkfun(mu)

    def linkinv(self, eta: np.ndarray) -> np.ndarray:
        """μ = g⁻¹(η), clamped inside the range of the mean as in R."""
        return self.link.linkinv(eta)

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        """dμ/dη, bounded below by machine epsilon as in R."""
        return self.link.mu_eta(eta)

    # distribution ---------------------------------------------------------
    def variance(self, mu: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def variance_deriv(self, mu: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """dV/dμ (not in R's family objects; the exact gradient of glmer's Laplace deviance needs it)."""
        raise NotImplementedError

    def dev_resids(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """Deviance residuals (squared), R's ``dev.resids``: ``2 wt (ℓ(y; y) − ℓ(y; μ))``."""
        return 2.0 * wt * (self.kernel(y, y) - self.kernel(y, mu))

    def kernel(self, y: np.ndarray, mu: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """The part of log p(y | μ) that depends on μ (per unit weight), 0 log 0 = 0."""
        raise NotImplementedError

    def kernel_inside(self, y: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """:meth:`kernel` for μ strictly inside the range of the mean (as :meth:`linkinv` returns).

        There ``log μ`` (and ``log(1 − μ)``) are finite, so ``y log μ`` equals
        ``xlogy(y, μ)`` (to an ulp of NumPy's vectorised ``log``), also at
        ``y = 0``, and costs a fraction of it. PIRLS evaluates it thousands of times.
        """
        return self.kernel(y, mu)

    def linkinv_and_mu_eta(self, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """μ and dμ/dη together (one pass for the logit link)."""
        return self.link.linkinv(eta), self.link.mu_eta(eta)

    def aic(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> float:
        """−2 × the log-likelihood, constants included (R's ``family$aic`` without the ``2 rank``)."""
        return float(np.sum(self.loglik_terms(y, mu, wt)))

    def loglik_terms(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:  # pragma: no cover
        """−2 log p(yᵢ | μᵢ) × its weight, observation by observation."""
        raise NotImplementedError

    def mustart(self, y: np.ndarray, wt: np.ndarray) -> np.ndarray:  # pragma: no cover
        """R's ``initialize`` expression: a starting mean inside the range of μ."""
        raise NotImplementedError

    def valid_mu(self, mu: np.ndarray) -> bool:
        return bool(np.all(np.isfinite(mu)))

    def __repr__(self) -> str:
        return f"\nFamily: {self.family} \nLink function: {self.link.name} \n"

    def __eq__(self, other) -> bool:
        return isinstance(other, Family) and other.family == self.family and other.link.name == self.link.name

    def __hash__(self) -> int:
        return hash((self.family, self.link.name))


class _Binomial(Family):
    family = "binomial"
    _links = ("logit", "probit", "cloglog")

    def variance(self, mu):
        return mu * (1.0 - mu)

    def variance_deriv(self, mu):
        return 1.0 - 2.0 * np.asarray(mu, dtype=float)

    def kernel(self, y, mu):
        return special.xlogy(y, mu) + special.xlogy(1.0 - y, 1.0 - mu)

    def kernel_inside(self, y, mu):
        return y * np.log(mu) + (1.0 - y) * np.log(1.0 - mu)

    def linkinv_and_mu_eta(self, eta):
        if self.link.name != "logit":
            return super().linkinv_and_mu_eta(eta)
        eta = np.asarray(eta, dtype=float)
        if eta.size and np.abs(eta).max() > _THRESH:
            return self.link.linkinv(eta), self.link.mu_eta(eta)
        mu = 1.0 / (1.0 + np.exp(-eta))
        return mu, mu * (1.0 - mu)  # = exp(eta) / (1 + exp(eta))^2

    def loglik_terms(self, y, mu, wt):
        # R: -2 * sum(ifelse(m > 0, wt / m, 0) * dbinom(round(m * y), round(m), mu, log = TRUE))
        # where m are the trials (the prior weights of a binomial response) and wt = 1.
        m = np.asarray(wt, dtype=float)
        k, size = np.round(m * y), np.round(m)
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = stats.binom.logpmf(k, size, mu)
        return np.where(m > 0, -2.0 * ll, 0.0)

    def mustart(self, y, wt):
        return (wt * y + 0.5) / (wt + 1.0)

    def valid_mu(self, mu):
        return bool(np.all(np.isfinite(mu)) and np.all(mu > 0) and np.all(mu < 1))


class _Poisson(Family):
    family = "poisson"
    _links = ("log",)

    def variance(self, mu):
        return mu

    def variance_deriv(self, mu):
        return np.ones_like(np.asarray(mu, dtype=float))

    def kernel(self, y, mu):
        return special.xlogy(y, mu) - mu

    def kernel_inside(self, y, mu):
        return y * np.log(mu) - mu

    def linkinv_and_mu_eta(self, eta):
        mu = self.link.linkinv(eta)
        return mu, mu  # log link: dμ/dη = μ

    def loglik_terms(self, y, mu, wt):
        # R: -2 * sum(dpois(y, mu, log = TRUE) * wt); a non-integer y gives dpois = 0 there
        # (with a warning); we use the continuous extension y log mu - mu - lgamma(y + 1).
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = special.xlogy(y, mu) - mu - special.gammaln(np.asarray(y, dtype=float) + 1.0)
        return -2.0 * wt * ll

    def mustart(self, y, wt):
        return np.asarray(y, dtype=float) + 0.1

    def valid_mu(self, mu):
        return bool(np.all(np.isfinite(mu)) and np.all(mu > 0))


def binomial(link: str = "logit") -> Family:
    """The binomial family, as R's ``binomial(link = "logit")``.

    Parameters
    ----------
    link : {"logit", "probit", "cloglog"}, default "logit"

    Returns
    -------
    Family

    Notes
    -----
    R equivalent: ``binomial()``, ``binomial(link = "probit")``. The
    variance is μ(1 − μ); ``aic`` is ``-2 Σ log dbinom(round(m y), m, μ)``
    with ``m`` the number of trials (the prior weights).

    Examples
    --------
    >>> import numpy as np
    >>> from mlmhelpers import binomial
    >>> fam = binomial()
    >>> fam.linkinv(np.array([0.0, 2.0])).round(4).tolist()
    [0.5, 0.8808]
    >>> binomial("probit").link.name
    'probit'
    """
    return _Binomial(link)


def poisson(link: str = "log") -> Family:
    """The Poisson family, as R's ``poisson(link = "log")``.

    Parameters
    ----------
    link : {"log"}, default "log"

    Returns
    -------
    Family

    Notes
    -----
    R equivalent: ``poisson()``. The variance is μ; ``aic`` is
    ``-2 Σ w log dpois(y, μ)``.

    Examples
    --------
    >>> import numpy as np
    >>> from mlmhelpers import poisson
    >>> fam = poisson()
    >>> float(fam.aic(np.array([0.0, 2.0]), np.array([1.0, 2.0]), np.ones(2))).__round__(4)
    4.6137
    """
    return _Poisson(link)


_FAMILIES = {"binomial": binomial, "poisson": poisson}


def get_family(family) -> Family:
    """A :class:`Family` from a family object, a name (``"binomial"``) or a constructor."""
    if isinstance(family, Family):
        return family
    if family in (binomial, poisson):
        return family()
    if isinstance(family, str):
        key = family.strip()
        if key not in _FAMILIES:
            raise ValueError(
                f"Unknown family {family!r}: glmer supports 'binomial' and 'poisson' "
                "(or mlmhelpers.binomial(link=...) / mlmhelpers.poisson())."
            )
        return _FAMILIES[key]()
    raise TypeError(
        f"family must be 'binomial', 'poisson' or a family object such as "
        f"mlmhelpers.binomial('probit'), got {type(family).__name__}."
    )
