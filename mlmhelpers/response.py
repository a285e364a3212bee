"""Response models: the Gaussian response with lme4's profiled REML/ML criterion.

The linear predictor (:mod:`mlmhelpers.predictor`) solves the penalised
least-squares problem at θ; the response model turns its solution into the
objective the optimiser minimises. For a Gaussian response, β and σ are
profiled out (Bates et al. 2015, eqs. 34 and 41), leaving a function of θ
only: the REML criterion or the deviance (−2 log-likelihood).
"""

from __future__ import annotations

import numpy as np

from .blocks import bmm, group_sum, lmul, rmul, solve_lower, solve_upper_t
from .optimize import central_gradient
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
    (closed form below), and so it is for several scalar terms (``(1 | a) +
    (1 | b)``) whose off-diagonal block is kept sparse (large crossed models);
    otherwise it is a central difference of the objective.

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
        self._last: tuple[bytes, PLSSolution] | None = None

    @property
    def exact_gradient(self) -> bool:
        lp = self.predictor
        return len(lp.terms) == 1 or lp._crossproducts(None).pairs is not None

    def pls(self, theta: np.ndarray) -> PLSSolution:
        """The PLS solution at ``theta`` (raises ``LinAlgError`` where undefined).

        The last solution is kept: the fit asks again for the one at the optimum,
        which the optimiser has just computed (a large model's factorisation costs
        seconds).
        """
        theta = np.asarray(theta, dtype=float)
        key = theta.tobytes()
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        fac = self.predictor.factorize(theta)
        sol = fac._solve_stats(self.stats, with_beta=True, explicit=False)
        self._last = (key, sol)
        return sol

    def pls_lambdas(self, lams: list[np.ndarray]) -> PLSSolution:
        """The PLS solution for given factors Λ (one square matrix per term)."""
        fac = self.predictor.factorize_lambdas(lams)
        return fac._solve_stats(self.stats, with_beta=True, explicit=False)

    def objective_lambdas(self, lams: list[np.ndarray]) -> float:
        """The criterion for given factors Λ (``inf`` where undefined)."""
        self.nfev += 1
        try:
            sol = self.pls_lambdas(lams)
        except np.linalg.LinAlgError:
            return np.inf
        if not sol.pwrss > 0:
            return np.inf
        return float(sol.deviance(self.reml))

    def objective_and_gradient_matrix(self, lams: list[np.ndarray]) -> tuple[float, np.ndarray]:
        """One term only: the criterion and its gradient with respect to every entry of Λ (k × k)."""
        self.nfev += 1
        try:
            sol = self.pls_lambdas(lams)
        except np.linalg.LinAlgError:
            return np.inf, np.full(lams[0].shape, np.nan)
        if not sol.pwrss > 0:
            return np.inf, np.full(lams[0].shape, np.nan)
        return float(sol.deviance(self.reml)), self._gradient_matrix(sol)

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
            return central_gradient(self.objective, theta)
        self.nfev += 1
        try:
            sol = self.pls(theta)
        except np.linalg.LinAlgError:
            return np.inf, np.full(theta.size, np.nan)
        if not sol.pwrss > 0:
            return np.inf, np.full(theta.size, np.nan)
        if len(self.predictor.terms) > 1:
            return float(sol.deviance(self.reml)), self._gradient_scalar_terms(sol)
        return float(sol.deviance(self.reml)), self._gradient_one_term(sol)

    @property
    def has_information(self) -> bool:
        """Whether :meth:`objective_gradient_information` applies (several scalar terms, exact gradient)."""
        lp = self.predictor
        return len(lp.terms) > 1 and lp._crossproducts(None).pairs is not None

    def objective_gradient_information(self, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """The criterion, its exact gradient in θ and an approximate Hessian in φ = θ².

        For several scalar terms (``V = I + Σ φ_t Z_t Z_tᵀ`` up to σ², with
        ``D_t = Z_t Z_tᵀ = ∂V/∂φ_t``), the profiled criterion's second
        derivatives are

            ∂²d/∂φ_s∂φ_t = −tr(P D_s P D_t) + m (2 yᵀP D_s P D_t P y / r² − c_s c_t / r⁴),

        with ``P`` the REML projection (:meth:`Factorization.residual`),
        ``r² = yᵀPy`` the penalised residual sum of squares, ``c_t = yᵀP D_t P y``
        and ``m = n − p`` (REML) or ``n`` (ML). The trace has expectation
        ``m yᵀP D_s P D_t P y / r²``; replacing it by that (the *average
        information* of Gilmour, Thompson & Cullis 1995, *Biometrics* 51,
        1440–1450) leaves only quadratic forms,

            H_st = (m / r²) (w_sᵀ P w_t − c_s c_t / r²),   w_t = D_t P y,

        a positive semi-definite matrix that costs one PLS solve per term with
        the factor already computed, where the exact Hessian would need the
        dense inverse again for every pair of terms. It steers the Newton
        iterations of :func:`mlmhelpers.optimize.optimize_theta`; convergence
        is judged with the exact gradient.
        """
        theta = np.asarray(theta, dtype=float)
        k = theta.size
        self.nfev += 1
        try:
            sol = self.pls(theta)
        except np.linalg.LinAlgError:
            return np.inf, np.full(k, np.nan), np.full((k, k), np.nan)
        if not sol.pwrss > 0:
            return np.inf, np.full(k, np.nan), np.full((k, k), np.nan)
        fun = float(sol.deviance(self.reml))
        grad = self._gradient_scalar_terms(sol)
        lp, fac = self.predictor, sol.factor
        e = fac.residual(self.y)  # P y
        r2 = float(self.y @ e)
        W = [t.Z[:, 0] * group_sum(t.codes, t.Z[:, 0] * e, t.nlevels)[t.codes] for t in lp.terms]
        c = np.array([float(w @ e) for w in W])
        PW = [fac.residual(w) for w in W]
        G = np.array([[float(W[a] @ PW[b]) for b in range(k)] for a in range(k)])
        m = lp.n - lp.p if self.reml else lp.n
        H = (m / r2) * (0.5 * (G + G.T) - np.outer(c, c) / r2)
        return fun, grad, H

    def moment_start(self) -> np.ndarray:
        """A start for θ from one-way analyses of variance, one per term (random intercepts only).

        For each factor, the between- and within-level mean squares of ``y``
        (residualised on ``X``) give the moment estimate of its variance
        ``(MSB − MSW) / n₀``; the residual variance is what the total leaves.
        Crude (each factor is treated as if alone), but close enough that
        Newton's method needs a few steps where Λ = I needs many more.
        Falls back to lme4's start (θ = 1) for a term that is not an intercept.
        """
        lp = self.predictor
        yr = self.stats.yr
        n = lp.n
        total = float(yr @ yr) / max(n - lp.p, 1)
        var = np.ones(len(lp.terms))
        intercepts = np.array([bool(np.all(t.Z[:, 0] == 1.0)) for t in lp.terms])
        for i, t in enumerate(lp.terms):
            if not intercepts[i]:
                continue
            J = t.nlevels
            cnt = np.bincount(t.codes, minlength=J).astype(float)
            sums = np.bincount(t.codes, weights=yr, minlength=J)
            between = float(np.sum(sums[cnt > 0] ** 2 / cnt[cnt > 0]))
            within = float(yr @ yr) - between
            msb = (between - float(yr.sum()) ** 2 / n) / max(J - 1, 1)
            msw = within / max(n - J, 1)
            n0 = (n - float(cnt @ cnt) / n) / max(J - 1, 1)
            var[i] = (msb - msw) / n0 if n0 > 0 else 0.0
        resid = total - float(np.sum(np.maximum(var[intercepts], 0.0)))
        resid = max(resid, 0.05 * total)
        theta = np.sqrt(np.maximum(var, 0.01 * resid) / resid)
        return np.where(intercepts, theta, 1.0)

    def _gradient_scalar_terms(self, sol: PLSSolution) -> np.ndarray:
        """Exact gradient for several scalar terms (``Λ = diag(θ_t I)``), unweighted.

        With ``A = ΛZᵀZΛ + I = L Lᵀ``, ``V = I + ZΛΛZᵀ`` and ``M = QᵀV⁻¹Q = R_X R_Xᵀ``:

        * ``∂ log|L|² / ∂θ_t = tr(A⁻¹ ∂A) = 2 (q_t − tr_t A⁻¹) / θ_t`` (``ΛZᵀZΛ = A − I``;
          0 at ``θ_t = 0``), where ``tr_t`` sums term t's diagonal of ``A⁻¹``:
          ``diag(A_rr⁻¹)`` for the later terms and ``Σ 1/L₁² + tr(A_rr⁻¹ Gᵀ L₁⁻² G)`` for
          the first (``A_rr`` the dense block's Schur complement, ``G`` the off-diagonal block);
        * ``∂ pwrss / ∂θ_t = −2 u_tᵀ Z_tᵀ r`` (envelope theorem, ``r`` the residual);
        * ``∂ log|R_X|² / ∂θ_t = −2 θ_t tr(M⁻¹ WᵀZ_t Z_tᵀW)`` with ``W = V⁻¹Q = Q − ZΛA⁻¹ΛZᵀQ``
          (``Z_tᵀW`` formed from the cross-products, never ``W`` itself).
        """
        from scipy.linalg import cho_solve, lapack, solve_triangular

        fac = sol.factor
        lp = self.predictor
        cp = lp._crossproducts(None)
        theta = np.array([lam[0, 0] for lam in fac.Lambdas])
        L1 = fac.L1[:, 0, 0]
        lr = lp._lambda_rest_diag(fac.Lambdas)
        # A_rr⁻¹ from its Cholesky factor (LAPACK potri fills the lower triangle).
        Ainv, info = lapack.dpotri(fac.Lrr, lower=1)
        if info != 0:
            return np.full(theta.size, np.nan)
        d = (theta[0] / L1**2) ** 2  # diag(L₁⁻¹ Λ₁)² L₁⁻²
        # H is zero above the diagonal, so Σ A_rr⁻¹ ∘ H reads only potri's lower triangle.
        H = cp.pairs.lower(d)
        H *= lr[:, None]
        H *= lr[None, :]
        dA = np.diag(Ainv).copy()
        trH = 2.0 * float(np.einsum("ij,ij->", Ainv, H)) - float(dA @ np.diag(H))
        tr = [float(np.sum(1.0 / L1**2)) + trH]
        off = 0
        for t in lp.terms[1:]:
            tr.append(float(dA[off:off + t.q].sum()))
            off += t.q
        qt = np.array([t.q for t in lp.terms], dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            d_ldL2 = np.where(theta != 0, 2.0 * (qt - np.array(tr)) / np.where(theta != 0, theta, 1.0), 0.0)
        # Residual and ∂pwrss.
        st = self.stats
        n, p = sol.n, sol.p
        r = st.yr - (lp.Q @ sol.beta_q if p else 0.0) - lp._zb(lp.split_u(sol.b))
        us = lp.split_u(sol.u)
        d_r2 = np.array([-2.0 * float(us[k][:, 0] @ group_sum(t.codes, t.Z[:, 0] * r, t.nlevels))
                         for k, t in enumerate(lp.terms)])
        if self.reml and p:
            # P = A⁻¹ΛZᵀQ = L⁻ᵀ RZX, by blocks.
            Pr = solve_triangular(fac.Lrr, fac.RZXr, lower=True, trans="T", check_finite=False)
            P1 = (fac.RZX1[:, 0, :] - np.asarray(fac.G @ Pr)) / L1[:, None]
            # Z_tᵀ W for every term in level space, with no pass over the n rows:
            # Z_1ᵀW = Z_1ᵀQ − diag(S₁) θ₁P₁ − C Λ_r P_r and Z_rᵀW = Z_rᵀQ − Cᵀ θ₁P₁ − S_rr Λ_r P_r.
            B1, Br = theta[0] * P1, lr[:, None] * Pr
            ZW1 = cp.ZQ1[:, 0, :] - cp.S1[:, 0, 0][:, None] * B1 - np.asarray(cp.C @ Br)
            ZWr = cp.ZQr - np.asarray(cp.C.T @ B1) - cp.Srr @ Br
            r0 = lp.u_slices[1].start
            ZWs = [ZW1] + [ZWr[sl.start - r0:sl.stop - r0] for sl in lp.u_slices[1:]]
            d_ldRX2 = np.empty(theta.size)
            for k, ZW in enumerate(ZWs):
                d_ldRX2[k] = -2.0 * theta[k] * float(np.sum(ZW * cho_solve((fac.RXq, True), ZW.T,
                                                                              check_finite=False).T))
            return d_ldL2 + d_ldRX2 + (n - p) * d_r2 / sol.pwrss
        return d_ldL2 + n * d_r2 / sol.pwrss

    def _gradient_one_term(self, sol: PLSSolution) -> np.ndarray:
        """Exact gradient with respect to θ for one term: entries of :meth:`_gradient_matrix`."""
        tmap = self.predictor.terms[0].tmap
        return self._gradient_matrix(sol)[tmap.rows, tmap.cols]

    def _gradient_matrix(self, sol: PLSSolution) -> np.ndarray:
        """Exact gradient with respect to every entry ``Λ_{rc}`` for one term (Λ shared by all levels).

        With ``E = ∂Λ/∂Λ_{rc}`` (a single 1 at row ``r``, column ``c``):

        * ``∂ log|L|² = 2 Σ_j [A_j⁻¹ Λᵀ Z_jᵀZ_j]_{c r}``;
        * ``∂ r² = −2 Σ_j w_j[r] u_j[c]`` with ``w_j = Z_jᵀ(y_j − X_jβ̂ − Z_j b_j)``
          (envelope theorem: β̂ and u are optimal);
        * ``∂ log|R_X|² = −2 Σ_j [P_j M⁻¹ Z_jᵀX_jᵀ]_{c r} + 2 Σ_j [Z_jᵀZ_j Λ P_j M⁻¹ P_jᵀ]_{r c}``
          with ``P_j = A_j⁻¹ Λᵀ Z_jᵀX_j`` and ``M = R_Xᵀ R_X``.

        Valid for any square Λ. Computed in the orthonormal basis ``Q`` of
        ``X`` (log|R_X|² changes by a constant only).
        """
        fac = sol.factor
        lp = self.predictor
        cp = lp._crossproducts(None)
        lam, L = fac.Lambdas[0], fac.L1
        S = cp.S1
        G1 = solve_upper_t(L, solve_lower(L, lmul(lam.T, S))).sum(axis=0)
        d_ldL2 = 2.0 * G1.T
        J, k = S.shape[0], S.shape[1]
        u = sol.u.reshape(J, k)
        b = sol.b.reshape(J, k)
        W = self.stats.Zy1 - cp.ZQ1.reshape(J * k, -1).dot(sol.beta_q).reshape(J, k) - bmm(S, b[:, :, None])[:, :, 0]
        d_r2 = -2.0 * (W.T @ u)
        n, p = sol.n, sol.p
        if self.reml:
            if p:
                P = solve_upper_t(L, fac.RZX1)  # (J, k, p) = A⁻¹ Λᵀ ZᵀQ
                Minv = np.linalg.inv(fac.RXq @ fac.RXq.T)
                PM = rmul(P, Minv)
                G2 = np.einsum("jqp,jsp->qs", PM, cp.ZQ1)
                T = bmm(PM, np.swapaxes(P, 1, 2))
                G3 = bmm(rmul(S, lam), T).sum(axis=0)
                d_ldRX2 = -2.0 * G2.T + 2.0 * G3
            else:
                d_ldRX2 = 0.0
            return d_ldL2 + d_ldRX2 + (n - p) * d_r2 / sol.pwrss
        return d_ldL2 + n * d_r2 / sol.pwrss


class ScaledTheta:
    """A better-conditioned parametrisation for the optimiser: ``Λ = T · L(θ̃)``.

    For each correlated covariance block of two or more columns (e.g.
    ``(1 + x | g)``) with columns ``Z_b = Q_b R_b`` (thin QR), ``T_b = √n R_b⁻¹``
    makes the block's columns orthogonal with the norm of an intercept, so
    that an uncentred or badly scaled slope (x around 1000, a calendar year)
    no longer makes the criterion's surface a narrow valley in θ. The model
    depends on Λ only through ΛΛᵀ, so the optimum is the same; lme4's θ (the
    lower-triangular Cholesky factor of ΛΛᵀ) is recovered with an LQ
    decomposition (:meth:`to_theta`). Blocks of one column are left alone.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from mlmhelpers.design import RandomEffectsTerm
    >>> from mlmhelpers.predictor import LinearPredictor
    >>> from mlmhelpers.response import ScaledTheta
    >>> x = 1000 + np.arange(12.0) % 5
    >>> g = np.arange(12) % 3
    >>> t = RandomEffectsTerm("g", g, pd.Index(range(3)), np.column_stack([np.ones(12), x]),
    ...                       ["(Intercept)", "x"], [(0, 2, True)])
    >>> sc = ScaledTheta(LinearPredictor(np.ones((12, 1)), [t]))
    >>> theta = np.array([2.0, -0.5, 0.1])
    >>> np.allclose(sc.to_theta(sc.from_theta(theta)), theta)
    True
    """

    def __init__(self, predictor: LinearPredictor) -> None:
        self.predictor = predictor
        n = predictor.n
        self.T: list[np.ndarray] = []
        for t in predictor.terms:
            T = np.eye(t.k)
            for a, b, _ in t.blocks:
                if b - a < 2:
                    continue
                R = np.linalg.qr(t.Z[:, a:b], mode="r")
                d = np.abs(np.diag(R))
                if d.min() <= 1e-10 * d.max():
                    continue  # collinear columns: leave this block alone
                R = R * np.where(np.diag(R) < 0, -1.0, 1.0)[:, None]
                T[a:b, a:b] = np.sqrt(n) * np.linalg.inv(R)
            self.T.append(T)
        self.is_identity = all(np.array_equal(T, np.eye(T.shape[0])) for T in self.T)

    def lambdas(self, theta_tilde: np.ndarray) -> list[np.ndarray]:
        """The factors ``Λ_k = T_k L_k(θ̃_k)``."""
        lp = self.predictor
        return [T @ t.tmap.Lambda(th) for T, t, th in zip(self.T, lp.terms, lp.split_theta(theta_tilde), strict=True)]

    @staticmethod
    def _lower_factor(lam: np.ndarray) -> np.ndarray:
        """Lower-triangular ``Λ'`` with a non-negative diagonal and ``Λ'Λ'ᵀ = ΛΛᵀ`` (LQ decomposition)."""
        R = np.linalg.qr(lam.T, mode="r")
        R = R * np.where(np.diag(R) < 0, -1.0, 1.0)[:, None]
        return R.T

    def _convert(self, theta: np.ndarray, forward: bool) -> np.ndarray:
        lp = self.predictor
        out = []
        for T, t, th in zip(self.T, lp.terms, lp.split_theta(theta), strict=True):
            lam = t.tmap.Lambda(th)
            M = T @ lam if forward else np.linalg.solve(T, lam)
            low = np.zeros_like(M)
            for a, b, _ in t.blocks:
                low[a:b, a:b] = self._lower_factor(M[a:b, a:b])
            out.append(low[t.tmap.rows, t.tmap.cols])
        return np.concatenate(out)

    def to_theta(self, theta_tilde: np.ndarray) -> np.ndarray:
        """lme4's θ for the model at ``θ̃``."""
        return self._convert(np.asarray(theta_tilde, dtype=float), forward=True)

    def from_theta(self, theta: np.ndarray) -> np.ndarray:
        """``θ̃`` for the model at lme4's ``θ``."""
        return self._convert(np.asarray(theta, dtype=float), forward=False)
