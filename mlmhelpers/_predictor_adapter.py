"""Interim implementation of the predictor interface for ONE grouping factor.

``glmer`` is written against the engine's predictor interface (CONTRACT §1:
``LinearPredictor(X, terms).factorize(theta, sqrtw)`` → ``Factorization`` with
``solve`` / ``solve_u`` → ``PLSSolution``). Until ``mlmhelpers/predictor.py``
(several grouping factors, branch ``engine``) is merged, this module provides
the same interface for today's single-factor design (``DesignMatrices`` of
:mod:`mlmhelpers.formula`), built on the engine's batched per-group Cholesky
helpers of :mod:`mlmhelpers.engine`: per-group weighted cross-products
``Z_jᵀ W Z_j`` are formed with ``bincount`` and every group's ``q × q``
block is factored in one batched call.

To switch: construct ``predictor.LinearPredictor(X, terms)`` in
``glmer._build`` instead of :class:`OneFactorPredictor`, and take
conditional variances from the engine. Nothing else in ``glmer`` depends on
this module.
"""

from __future__ import annotations

import numpy as np

from .engine import ThetaMap, _chol, _solve_lower, _solve_upper_t

__all__ = ["OneFactorPredictor", "OneFactorFactorization", "WeightedPLSSolution", "Term"]


class Term:
    """One grouping factor's random effects (the fields of the engine's ``RandomEffectsTerm``)."""

    def __init__(self, name, codes, levels, Z, z_names, blocks):
        self.name, self.codes, self.levels, self.Z = name, codes, levels, Z
        self.z_names, self.blocks = list(z_names), list(blocks)
        self.tmap = ThetaMap(Z.shape[1], self.blocks)

    nlevels = property(lambda self: len(self.levels))
    k = property(lambda self: self.Z.shape[1])
    q = property(lambda self: self.nlevels * self.k)
    n_theta = property(lambda self: self.tmap.size)


class WeightedPLSSolution:
    """CONTRACT's ``PLSSolution`` fields for a weighted PLS solve."""

    def __init__(self, theta, beta, u, b, pwrss, ldL2, ldRX2, RX, n, p):
        self.theta, self.beta, self.u, self.b = theta, beta, u, b
        self.pwrss, self.ldL2, self.ldRX2, self.RX, self.n, self.p = pwrss, ldL2, ldRX2, RX, n, p

    def deviance(self, reml: bool) -> float:
        LOG2PI = np.log(2.0 * np.pi)
        if reml:
            nmp = self.n - self.p
            return self.ldL2 + self.ldRX2 + nmp * (1.0 + LOG2PI + np.log(self.pwrss / nmp))
        return self.ldL2 + self.n * (1.0 + LOG2PI + np.log(self.pwrss / self.n))

    def sigma(self, reml: bool) -> float:
        return float(np.sqrt(self.pwrss / (self.n - self.p if reml else self.n)))


class OneFactorPredictor:
    """X and one grouping factor's random-effect columns; θ → weighted blocked factor.

    Parameters
    ----------
    X : ndarray (n, p)
    terms : list of one :class:`Term`
        The grouping factor: level codes, levels, its random-effect columns
        ``Z`` (k per level), their names and covariance blocks.

    Notes
    -----
    ``u`` and ``b`` are flat vectors of length ``q = n_levels × k``, level by
    level (lme4's order for one factor).
    """

    def __init__(self, X: np.ndarray, terms: list[Term]) -> None:
        if len(terms) != 1:
            raise NotImplementedError("the interim predictor handles one grouping factor")
        t = terms[0]
        self.terms = [t]
        self.X = np.ascontiguousarray(X, dtype=float)
        self.Z = np.ascontiguousarray(t.Z, dtype=float)
        self.groups = np.asarray(t.codes, dtype=np.intp)
        self.J = t.nlevels
        self.k = self.Z.shape[1]
        self.tmap = t.tmap
        self.n, self.p = self.X.shape
        self.q = self.J * self.k
        self.n_theta = self.tmap.size
        self.theta0 = self.tmap.theta0
        self.lower = self.tmap.lower
        self.is_diag = self.tmap.is_diag
        self.scalar = self.k == 1
        # row-wise products Z_a Z_b and Z_a X_c, reused at every weight update
        k, p = self.k, self.p
        self._zz = np.einsum("na,nb->nab", self.Z, self.Z).reshape(self.n, k * k)
        self._zx = np.einsum("na,nc->nac", self.Z, self.X).reshape(self.n, k * p)

    def Lambda(self, theta: np.ndarray) -> np.ndarray:
        """The k × k block of Λ_θ shared by every level."""
        return self.tmap.Lambda(np.asarray(theta, dtype=float))

    def Lambdas(self, theta: np.ndarray) -> list[np.ndarray]:
        return [self.Lambda(theta)]

    def split_u(self, u: np.ndarray) -> list[np.ndarray]:
        """A flat (q,) vector as per-term (levels, k) arrays."""
        return [np.asarray(u).reshape(self.J, self.k)]

    def _gsum(self, M: np.ndarray) -> np.ndarray:
        """Column sums of ``M`` (n, m) within each level → (J, m)."""
        if M.ndim == 1:
            return np.bincount(self.groups, weights=M, minlength=self.J)
        out = np.empty((self.J, M.shape[1]))
        for c in range(M.shape[1]):
            out[:, c] = np.bincount(self.groups, weights=M[:, c], minlength=self.J)
        return out

    def factorize(self, theta: np.ndarray, sqrtw: np.ndarray | None = None) -> "OneFactorFactorization":
        """Factor ``Λᵀ Zᵀ W Z Λ + I`` level by level (W = diag(sqrtw²))."""
        return OneFactorFactorization(self, np.asarray(theta, dtype=float), sqrtw)

    def zlambda(self, theta: np.ndarray, u: np.ndarray) -> np.ndarray:
        """``Z Λ_θ u`` for ``u`` of shape (q,) or (q, m)."""
        lam = self.Lambda(theta)
        u = np.asarray(u, dtype=float)
        if u.ndim == 1:
            b = u.reshape(self.J, self.k) @ lam.T
            return np.einsum("nk,nk->n", self.Z, b[self.groups])
        m = u.shape[1]
        U = u.reshape(self.J, self.k, m)
        B = np.einsum("ab,jbm->jam", lam, U)
        return np.einsum("nk,nkm->nm", self.Z, B[self.groups])


class OneFactorFactorization:
    """The blocked factor at one (θ, weights); solves the PLS problems."""

    def __init__(self, pred: OneFactorPredictor, theta: np.ndarray, sqrtw: np.ndarray | None) -> None:
        self.pred = pred
        self.theta = theta
        J, k, p = pred.J, pred.k, pred.p
        self.w = np.ones(pred.n) if sqrtw is None else np.asarray(sqrtw, dtype=float) ** 2
        self.sqrtw = np.sqrt(self.w) if sqrtw is None else np.asarray(sqrtw, dtype=float)
        self.lam = lam = pred.Lambda(theta)
        if k == 1:
            ztwz = np.bincount(pred.groups, weights=self.w * pred._zz[:, 0], minlength=J)
            l2 = lam[0, 0] ** 2 * ztwz + 1.0
            self.L = np.sqrt(l2).reshape(J, 1, 1)
        else:
            ZtWZ = pred._gsum(pred._zz * self.w[:, None]).reshape(J, k, k)
            A = np.matmul(np.matmul(lam.T, ZtWZ), lam)
            A[:, np.arange(k), np.arange(k)] += 1.0
            self.L = _chol(A)
        self.ldL2 = 2.0 * float(np.sum(np.log(np.diagonal(self.L, axis1=1, axis2=2))))
        self._RX = None

    # -- fixed-effects blocks, computed only when a joint solve needs them
    def _fixed_blocks(self):
        if self._RX is None:
            pred = self.pred
            J, k, p = pred.J, pred.k, pred.p
            ZtWX = pred._gsum(pred._zx * self.w[:, None]).reshape(J, k, p)
            self.RZX = _solve_lower(self.L, np.matmul(self.lam.T, ZtWX))
            RZX2 = self.RZX.reshape(J * k, p)
            Xw = pred.X * self.sqrtw[:, None]
            schur = Xw.T @ Xw - RZX2.T @ RZX2
            try:
                self._RX = np.linalg.cholesky(schur)
            except np.linalg.LinAlgError:
                raise np.linalg.LinAlgError(
                    "The weighted fixed-effects cross-product is not positive definite: the "
                    "fixed-effect design is (numerically) collinear with the random effects."
                ) from None
            self.ldRX2 = 2.0 * float(np.sum(np.log(np.diag(self._RX))))
        return self._RX

    @property
    def RX(self) -> np.ndarray:
        return self._fixed_blocks()

    def _cu(self, y: np.ndarray) -> np.ndarray:
        pred = self.pred
        wy = self.w * y
        if pred.k == 1:
            zty = np.bincount(pred.groups, weights=wy * pred.Z[:, 0], minlength=pred.J)
            return (self.lam[0, 0] * zty / self.L[:, 0, 0])[:, None]
        ZtWy = pred._gsum(pred.Z * wy[:, None])  # (J, k)
        return _solve_lower(self.L, (ZtWy @ self.lam)[:, :, None])[:, :, 0]

    def _back(self, c: np.ndarray) -> np.ndarray:
        if self.pred.k == 1:
            return c / self.L[:, :, 0]
        return _solve_upper_t(self.L, c[:, :, None])[:, :, 0]

    def _finish(self, y, beta, U) -> WeightedPLSSolution:
        pred = self.pred
        u = U.reshape(-1)
        b = (U @ self.lam.T).reshape(-1)
        fitted = pred.zlambda(self.theta, u)
        if np.any(beta):
            fitted = fitted + pred.X @ beta
        r = self.sqrtw * (y - fitted)
        pwrss = float(r @ r + u @ u)
        RX = self._RX if self._RX is not None else None
        ldRX2 = self.ldRX2 if self._RX is not None else np.nan
        return WeightedPLSSolution(theta=self.theta, beta=beta, u=u, b=b, pwrss=pwrss, ldL2=self.ldL2,
                                   ldRX2=ldRX2, RX=RX, n=pred.n, p=pred.p)

    def solve(self, y: np.ndarray) -> WeightedPLSSolution:
        """Minimise ‖√w ⊙ (y − Xβ − ZΛu)‖² + ‖u‖² over (β, u)."""
        y = np.asarray(y, dtype=float)
        RX = self._fixed_blocks()
        cu = self._cu(y)
        Xw = self.pred.X * self.sqrtw[:, None]
        J, k, p = self.pred.J, self.pred.k, self.pred.p
        RZX2 = self.RZX.reshape(J * k, p)
        rhs = Xw.T @ (self.sqrtw * y) - RZX2.T @ cu.reshape(-1)
        beta = np.linalg.solve(RX.T, np.linalg.solve(RX, rhs))
        U = self._back(cu - np.einsum("jkp,p->jk", self.RZX, beta))
        return self._finish(y, beta, U)

    def solve_u(self, y: np.ndarray) -> WeightedPLSSolution:
        """Minimise ‖√w ⊙ (y − ZΛu)‖² + ‖u‖² over u (β = 0)."""
        y = np.asarray(y, dtype=float)
        U = self._back(self._cu(y))
        return self._finish(y, np.zeros(self.pred.p), U)

    def condvar_blocks(self) -> list[np.ndarray]:
        """Per-level ``Λ (L_j L_jᵀ)⁻¹ Λᵀ`` (J, k, k), per term: conditional covariance of b with σ = 1."""
        J, k = self.pred.J, self.pred.k
        Linv = np.linalg.solve(self.L, np.broadcast_to(np.eye(k), (J, k, k)))
        W = np.einsum("ik,jlk->jil", self.lam, Linv)
        return [np.einsum("jik,jlk->jil", W, W)]
