"""Response models: the Gaussian response with lme4's profiled REML/ML criterion.

The linear predictor (:mod:`mlmhelpers.predictor`) solves the penalised
least-squares problem at θ; the response model turns its solution into the
objective the optimiser minimises. For a Gaussian response, β and σ are
profiled out (Bates et al. 2015, eqs. 34 and 41), leaving a function of θ
only: the REML criterion or the deviance (−2 log-likelihood).
"""

from __future__ import annotations

import numpy as np

from .blocks import solve_lower, solve_upper_t
from .predictor import LinearPredictor, PLSSolution

__all__ = ["GaussianResponse"]


class GaussianResponse:
    """The profiled Gaussian criterion of a linear mixed model.

    Parameters
    ----------
    predictor : LinearPredictor
    y : ndarray (n,)
    reml : bool
        REML criterion (``True``) or ML deviance.

    Notes
    -----
    The cross-products of ``y`` with the design are computed once, from ``y``
    residualised on the fixed effects, so each evaluation costs only the
    factorisation. For a single random-effects term the gradient is exact
    (closed form below); for several terms it is a central difference of the
    objective.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from mlmhelpers.design import RandomEffectsTerm
    >>> from mlmhelpers.predictor import LinearPredictor
    >>> from mlmhelpers.response import GaussianResponse
    >>> g = np.repeat(np.arange(4), 3)
    >>> term = RandomEffectsTerm("g", g, pd.Index(range(4)), np.ones((12, 1)), ["(Intercept)"], [(0, 1, True)])
    >>> y = np.array([1., 2, 3, 2, 3, 4, 6, 5, 7, 1, 0, 2])
    >>> resp = GaussianResponse(LinearPredictor(np.ones((12, 1)), [term]), y, reml=True)
    >>> f, g = resp.objective_and_gradient(np.array([1.0]))
    >>> bool(abs(g[0] - (resp.objective(np.array([1.0 + 1e-6])) - f) / 1e-6) < 1e-4)
    True
    """

    def __init__(self, predictor: LinearPredictor, y: np.ndarray, reml: bool) -> None:
        self.predictor = predictor
        self.y = np.asarray(y, dtype=float)
        self.reml = bool(reml)
        self.stats = predictor.response_stats(self.y)
        self.nfev = 0

    @property
    def exact_gradient(self) -> bool:
        return len(self.predictor.terms) == 1

    def pls(self, theta: np.ndarray) -> PLSSolution:
        """The PLS solution at ``theta`` (raises ``LinAlgError`` where undefined)."""
        fac = self.predictor.factorize(np.asarray(theta, dtype=float))
        return fac._solve_stats(self.stats, with_beta=True, explicit=False)

    def objective(self, theta: np.ndarray) -> float:
        """REML criterion or deviance at ``theta`` (``inf`` where undefined)."""
        self.nfev += 1
        try:
            sol = self.pls(theta)
        except np.linalg.LinAlgError:
            return np.inf
        if not sol.pwrss > 0:
            return np.inf
        return float(sol.deviance(self.reml))

    def objective_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The objective and its gradient (``(inf, nan)`` where undefined)."""
        theta = np.asarray(theta, dtype=float)
        if not self.exact_gradient:
            f = self.objective(theta)
            g = np.empty(theta.size)
            for i in range(theta.size):
                h = 1e-5 * max(1.0, abs(theta[i]))
                e = np.zeros(theta.size)
                e[i] = h
                g[i] = (self.objective(theta + e) - self.objective(theta - e)) / (2 * h)
            return f, g
        self.nfev += 1
        try:
            sol = self.pls(theta)
        except np.linalg.LinAlgError:
            return np.inf, np.full(theta.size, np.nan)
        if not sol.pwrss > 0:
            return np.inf, np.full(theta.size, np.nan)
        return float(sol.deviance(self.reml)), self._gradient_one_term(sol)

    def _gradient_one_term(self, sol: PLSSolution) -> np.ndarray:
        """Exact gradient for one term (Λ = ``k × k`` block shared by all levels).

        With ``E_k = ∂Λ/∂θ_k`` (a single 1 at row ``r_k``, column ``c_k``):

        * ``∂ log|L|² = 2 Σ_j [A_j⁻¹ Λᵀ Z_jᵀZ_j]_{c r}``;
        * ``∂ r² = −2 Σ_j w_j[r] u_j[c]`` with ``w_j = Z_jᵀ(y_j − X_jβ̂ − Z_j b_j)``
          (envelope theorem: β̂ and u are optimal);
        * ``∂ log|R_X|² = −2 Σ_j [P_j M⁻¹ Z_jᵀX_jᵀ]_{c r} + 2 Σ_j [Z_jᵀZ_j Λ P_j M⁻¹ P_jᵀ]_{r c}``
          with ``P_j = A_j⁻¹ Λᵀ Z_jᵀX_j`` and ``M = R_Xᵀ R_X``.

        Computed in the orthonormal basis ``Q`` of ``X`` (log|R_X|² changes
        by a constant only).
        """
        fac = sol.factor
        lp = self.predictor
        cp = lp._crossproducts(None)
        tmap = lp.terms[0].tmap
        lam, L = fac.Lambdas[0], fac.L1
        r, c = tmap.rows, tmap.cols
        S = cp.S1
        G1 = solve_upper_t(L, solve_lower(L, np.matmul(lam.T, S))).sum(axis=0)
        d_ldL2 = 2.0 * G1[c, r]
        J, k = S.shape[0], S.shape[1]
        u = sol.u.reshape(J, k)
        b = sol.b.reshape(J, k)
        W = self.stats.Zy1 - cp.ZQ1 @ sol.beta_q - np.matmul(S, b[:, :, None])[:, :, 0]
        d_r2 = -2.0 * (W.T @ u)[r, c]
        n, p = sol.n, sol.p
        if self.reml:
            if p:
                P = solve_upper_t(L, fac.RZX1)  # (J, k, p) = A⁻¹ Λᵀ ZᵀQ
                Minv = np.linalg.inv(fac.RXq @ fac.RXq.T)
                PM = P @ Minv
                G2 = np.einsum("jqp,jsp->qs", PM, cp.ZQ1)
                T = np.matmul(PM, np.swapaxes(P, 1, 2))
                G3 = np.matmul(np.matmul(S, lam), T).sum(axis=0)
                d_ldRX2 = -2.0 * G2[c, r] + 2.0 * G3[r, c]
            else:
                d_ldRX2 = 0.0
            return d_ldL2 + d_ldRX2 + (n - p) * d_r2 / sol.pwrss
        return d_ldL2 + n * d_r2 / sol.pwrss
