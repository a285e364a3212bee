"""The linear predictor: ``X``, the random-effects terms, θ → the blocked Cholesky factor.

For a linear mixed model with fixed-effects matrix ``X`` and random-effects
terms ``Z_1 … Z_K`` (one per grouping factor, largest first), the penalised
least-squares (PLS) problem at θ is

    minimise over (β, u)   ‖ √w ⊙ (y − X β − Z Λ_θ u) ‖² + ‖u‖²,

solved through the Cholesky factor ``L`` of ``A = Λᵀ Zᵀ W Z Λ + I``
(Bates, Mächler, Bolker & Walker 2015, *J. Stat. Softw.* 67(1), eqs. 11–19).
``L`` is computed block by block, in the style of MixedModels.jl's
``updateL!`` (Bates et al.):

* the first term's diagonal block is block diagonal, one small ``k × k``
  block per level: its Cholesky factor is one batched computation with a
  loop over the ``k`` columns, never over the levels (:mod:`mlmhelpers.blocks`);
* the block between the first term and the others is sparse
  (``scipy.sparse``): ``G = L_1⁻¹ Λ_1ᵀ Z_1ᵀ W Z_r Λ_r`` (dense when it has
  at most 500,000 entries, where NumPy is faster than scipy.sparse's
  per-call overhead);
* the remaining terms together form one dense block
  ``Λ_rᵀ Z_rᵀ W Z_r Λ_r + I − GᵀG`` factored by LAPACK. Its size is the
  number of random effects of every term but the first (1,142 for an
  InstEval-shaped model, 51 for counties within states, 3,706 for a
  MovieLens-shaped one); memory and time grow with its square and cube.
  For scalar terms ``GᵀG`` is ``Λ_r Cᵀ diag(d) C Λ_r`` with ``C = Z_1ᵀ Z_r``
  fixed, accumulated by :class:`RowOuterProducts` without sparse products.

With a single term only the batched block exists: that is the fast path for
one grouping factor. The fixed effects are handled in an orthonormal basis
``Q`` of ``X`` (``X = Q R``): the criterion is computed for ``Q`` and shifted
by ``log |det R|²``, β is transformed back, and the response is residualised
on ``Q`` first, so that a large location or scale of ``y`` or of a covariate
costs no accuracy (no ``yᵀy − …`` cancellation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.linalg import LinAlgError, blas, cho_solve, cholesky, solve_triangular
from scipy.linalg import lapack as _lapack

from .blocks import batched_cholesky, bmm, group_sum, lmul, rmul, solve_lower, solve_upper_t
from .design import RandomEffectsTerm

__all__ = ["LinearPredictor", "Factorization", "PLSSolution", "RowOuterProducts", "LOG2PI"]

LOG2PI = float(np.log(2.0 * np.pi))


#: Largest q1 · qr for which the block between the first term and the others is kept dense.
_DENSE_CROSS_MAX = 500_000

#: Largest number of row-wise pairs of non-zeros of ``C`` precomputed for scalar terms
#: (24 bytes each: 3.8 GB at most; a MovieLens-1M-shaped model has 1.25 × 10⁸ pairs in all,
#: 0.2 × 10⁸ once its heaviest rows are handled densely).
_PAIRS_MAX = 160_000_000

#: Pairs built at a time (bounds the temporaries of :meth:`RowOuterProducts.build`).
_PAIRS_CHUNK = 5_000_000

#: A row of ``C`` with more than this fraction of ``qr`` non-zeros is handled densely (BLAS
#: ``syrk``) rather than by its pairs. Measured on the MovieLens-shaped benchmark (2-core AMD
#: EPYC, OpenBLAS): 0.1 → 57 million pairs, 4.9 s to build, 1.09 s per accumulation; 0.05 →
#: 20 million, 0.8 s and 0.39 s; 0.025 → 4 million, 0.2 s and 0.56 s (syrk dominates).
_HEAVY_ROW_FRACTION = 0.05


def _cholesky_lower(A: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor by LAPACK in place (``A`` is overwritten; only its lower triangle is read)."""
    try:
        L = cholesky(A, lower=True, overwrite_a=True, check_finite=False)
    except LinAlgError:
        raise np.linalg.LinAlgError("matrix not positive definite") from None
    return L


def _sumsq(v: np.ndarray) -> float:
    """‖v‖² without BLAS: a multithreaded ``ddot`` on a busy machine can cost milliseconds."""
    return float(np.einsum("i,i->", v, v))


@dataclass(eq=False)
class PLSSolution:
    """Everything the penalised least-squares step yields at one θ.

    Attributes
    ----------
    theta : ndarray
    beta : ndarray (p,)
        Fixed effects (zeros from :meth:`Factorization.solve_u`).
    u : ndarray (q,)
        Spherical random effects, all terms concatenated, level by level.
    b : ndarray (q,)
        Random effects on the data scale, ``Λ_θ u``.
    pwrss : float
        Penalised weighted residual sum of squares ``‖√w ⊙ r‖² + ‖u‖²``.
    ldL2, ldRX2 : float
        ``log |L_θ|²`` and ``log |R_X|²``.
    RX : ndarray (p, p)
        Lower Cholesky factor of the fixed-effects Schur complement:
        ``vcov = σ² (RX RXᵀ)⁻¹``.
    n, p : int
    """

    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray
    b: np.ndarray
    pwrss: float
    ldL2: float
    ldRX2: float
    RX: np.ndarray
    n: int
    p: int
    factor: Factorization | None = field(default=None, repr=False)
    beta_q: np.ndarray | None = field(default=None, repr=False)

    def deviance(self, reml: bool) -> float:
        """The profiled Gaussian criterion (−2 log-likelihood; REML criterion if ``reml``)."""
        if reml:
            nmp = self.n - self.p
            return self.ldL2 + self.ldRX2 + nmp * (1.0 + LOG2PI + np.log(self.pwrss / nmp))
        return self.ldL2 + self.n * (1.0 + LOG2PI + np.log(self.pwrss / self.n))

    def sigma(self, reml: bool) -> float:
        """Profiled residual standard deviation."""
        return float(np.sqrt(self.pwrss / (self.n - self.p if reml else self.n)))

    # Conveniences -----------------------------------------------------------
    @property
    def Lambdas(self) -> list[np.ndarray]:
        """Each term's ``k × k`` relative covariance factor Λ."""
        return self.factor.Lambdas

    @property
    def Lambda(self) -> np.ndarray:
        """The ``k × k`` factor Λ of a single-term model (see :attr:`Lambdas` otherwise)."""
        lams = self.Lambdas
        if len(lams) != 1:
            raise ValueError(f"this model has {len(lams)} random-effects terms; use Lambdas.")
        return lams[0]

    def b_blocks(self) -> list[np.ndarray]:
        """``b`` split by term, each of shape (levels, k)."""
        return self.factor.predictor.split_u(self.b)

    def u_blocks(self) -> list[np.ndarray]:
        return self.factor.predictor.split_u(self.u)


@dataclass(eq=False)
class RowOuterProducts:
    """``Cᵀ diag(d) C`` for a fixed sparse ``C`` (q1 × qr) and any non-negative row weights ``d``.

    Scalar random-effects terms need this matrix at every θ (``d`` changes,
    ``C = Z_1ᵀ Z_r`` does not). Each row ``i`` of ``C`` contributes
    ``d_i c_i c_iᵀ``:

    * rows with few non-zeros by their pairs: every pair ``(j, j')`` (``j ≤ j'``)
      of non-zeros in a row adds ``d_i c_ij c_ij'`` to entry ``(j, j')``; the
      pattern is built once, so each evaluation is one ``np.bincount``;
    * rows with many non-zeros (more than ``_HEAVY_ROW_FRACTION · qr``: their
      pairs would outnumber the flops of a dense product) as a dense block
      ``C_h``, added as ``syrk(diag(√d_h) C_h)``.

    Attributes
    ----------
    idx, w, row : ndarray
        The light rows' pairs: target entry ``j · qr + j'``, weight
        ``c_ij c_ij'`` and row ``i``. Listed by ``j``, so that ``bincount``
        writes one row of the result at a time.
    heavy : ndarray of int
        The rows handled densely, and ``dense`` their columns (n_heavy × qr,
        Fortran order).
    """

    qr: int
    idx: np.ndarray
    w: np.ndarray
    row: np.ndarray
    heavy: np.ndarray
    dense: np.ndarray

    @classmethod
    def build(cls, C: sp.csr_matrix) -> RowOuterProducts | None:
        """The structure for ``C``; ``None`` when the light rows have more than ``_PAIRS_MAX`` pairs."""
        C = C.tocsr()
        C.sort_indices()
        q1, qr = C.shape
        m = np.diff(C.indptr).astype(np.int64)
        is_heavy = m > max(_HEAVY_ROW_FRACTION * qr, 1.0)
        heavy = np.flatnonzero(is_heavy)
        dense = np.asfortranarray(C[heavy].toarray()) if heavy.size else np.zeros((0, qr), order="F")
        m_light = np.where(is_heavy, 0, m)
        npairs = int(np.sum(m_light * (m_light + 1) // 2))
        if npairs > _PAIRS_MAX:
            return None
        rowidx = np.repeat(np.arange(q1), m)
        light_nz = ~is_heavy[rowidx]
        nz = np.flatnonzero(light_nz)
        pos_in_row = nz - C.indptr[rowidx[nz]]
        rep = np.zeros(C.nnz, dtype=np.int64)
        rep[nz] = m[rowidx[nz]] - pos_in_row  # partners j' at or after j in the same row
        # Pairs are listed by their first column j (the non-zeros sorted by column: a short
        # sort), so that bincount's writes stay within one row of the result at a time;
        # sorting the pairs themselves would cost more than it saves.
        by_col = nz[np.argsort(C.indices[nz], kind="stable")]
        idx = np.empty(npairs, dtype=np.int64)
        w = np.empty(npairs)
        row = np.empty(npairs, dtype=np.intp)  # (a narrower index makes every gather convert it)
        # In chunks of non-zeros, so that the temporaries stay small next to the result.
        ends = np.cumsum(rep[by_col])
        bounds = np.searchsorted(ends, np.arange(_PAIRS_CHUNK, npairs, _PAIRS_CHUNK), side="right")
        out = 0
        for chunk in np.split(by_col, bounds):
            rep_c = rep[chunk]
            first = np.repeat(chunk, rep_c)
            start = np.cumsum(rep_c) - rep_c
            second = first + (np.arange(first.size) - np.repeat(start, rep_c))
            sl = slice(out, out + first.size)
            np.multiply(C.indices[first].astype(np.int64), qr, out=idx[sl])
            idx[sl] += C.indices[second]
            np.multiply(C.data[first], C.data[second], out=w[sl])
            row[sl] = rowidx[first]
            out += first.size
        return cls(qr=qr, idx=idx, w=w, row=row, heavy=heavy, dense=dense)

    def lower(self, d: np.ndarray) -> np.ndarray:
        """``Cᵀ diag(d) C`` in the lower triangle of a Fortran-ordered (qr, qr) array (upper: zeros)."""
        qr = self.qr
        # bincount fills the upper triangle in C order: its transpose is the lower one in F order.
        M = np.bincount(self.idx, weights=self.w * d[self.row], minlength=qr * qr)
        M = M.astype(np.float64, copy=False).reshape(qr, qr).T  # (integer when there are no pairs)
        if self.heavy.size:
            B = self.dense * np.sqrt(d[self.heavy])[:, None]
            M += blas.dsyrk(1.0, B, trans=1, lower=1)
        return M


@dataclass(eq=False)
class _CrossProducts:
    """The weighted cross-products of the design that ``factorize`` needs."""

    S1: np.ndarray  # (J1, k1, k1)  Z_1ᵀ W Z_1 by level
    ZQ1: np.ndarray  # (J1, k1, p)  Z_1ᵀ W Q by level
    QQ: np.ndarray  # (p, p)  Qᵀ W Q
    Srr: np.ndarray | None = None  # (qr, qr) dense  Z_rᵀ W Z_r
    C: sp.csr_matrix | None = None  # (q1, qr) sparse  Z_1ᵀ W Z_r
    Cd: np.ndarray | None = None  # the same, dense, when q1 · qr is small
    ZQr: np.ndarray | None = None  # (qr, p)  Z_rᵀ W Q
    #: Scalar terms only: ``Cᵀ diag(d) C`` for any ``d`` (see :class:`RowOuterProducts`).
    pairs: RowOuterProducts | None = None


@dataclass(eq=False)
class _WeightedScalar:
    """Fixed indices for the weighted cross-products of scalar terms (see ``_weighted_scalar``)."""

    q1: int
    qr: int
    c1: np.ndarray  # (n,) level of term 1
    z1: np.ndarray  # (n,) term 1's column
    idx_q1: np.ndarray  # (n·p,) entry of Z_1ᵀWQ (q1 × p) for each row and column of Q
    gr: np.ndarray | None = None  # (n·(K−1),) index among the qr effects of terms 2..K, term by term
    zr: np.ndarray | None = None  # their columns
    idx_c: np.ndarray | None = None  # entry of C = Z_1ᵀWZ_r (q1 × qr)
    z_c: np.ndarray | None = None
    idx_s: np.ndarray | None = None  # entry of Z_rᵀWZ_r (qr × qr), all ordered pairs of terms 2..K
    z_s: np.ndarray | None = None
    idx_qr: np.ndarray | None = None  # entry of Z_rᵀWQ (qr × p)


class LinearPredictor:
    """Fixed-effects matrix ``X`` and random-effects terms; θ → blocked Cholesky factor.

    Parameters
    ----------
    X : ndarray (n, p)
        Full column rank (drop rank-deficient columns first, as
        :func:`mlmhelpers.design.independent_columns`).
    terms : sequence of RandomEffectsTerm
        In the engine's order: the first term gets the batched diagonal
        block, so it should be the one with most levels (lme4's order).
    qr : (Q, R), optional
        A thin QR of ``X`` already computed (e.g. by the rank check).

    Attributes
    ----------
    n, p, q : int
        Rows, fixed effects, total number of random effects.
    n_theta : int
    theta0 : ndarray
        lme4's start (identity Λ).
    lower : ndarray
        0 for diagonal entries of Λ, ``-inf`` otherwise.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from mlmhelpers.design import RandomEffectsTerm
    >>> from mlmhelpers.predictor import LinearPredictor
    >>> rng = np.random.default_rng(0)
    >>> g = np.repeat(np.arange(5), 4)
    >>> term = RandomEffectsTerm("g", g, pd.Index(range(5)), np.ones((20, 1)), ["(Intercept)"], [(0, 1, True)])
    >>> lp = LinearPredictor(np.ones((20, 1)), [term])
    >>> y = rng.normal(size=5)[g] + rng.normal(size=20)
    >>> sol = lp.factorize(np.array([0.8])).solve(y)
    >>> shifted = lp.factorize(np.array([0.8])).solve(y + 1e6)
    >>> bool(abs(shifted.deviance(reml=True) - sol.deviance(reml=True)) < 1e-9)
    True
    >>> round(float(shifted.beta[0] - sol.beta[0]), 6)
    1000000.0
    """

    def __init__(self, X: np.ndarray, terms: Sequence[RandomEffectsTerm], *, qr: tuple | None = None) -> None:
        X = np.asarray(X, dtype=float)
        if X.ndim != 2:
            raise ValueError("X must be a 2-d array.")
        self.X = X
        self.terms = list(terms)
        if not self.terms:
            raise ValueError("a linear mixed model needs at least one random-effects term.")
        self.n, self.p = X.shape
        for t in self.terms:
            if len(t.codes) != self.n:
                raise ValueError(f"term {t.name!r} has {len(t.codes)} rows, X has {self.n}.")
        self.q = sum(t.q for t in self.terms)
        self.n_theta = sum(t.n_theta for t in self.terms)
        self.theta0 = np.concatenate([t.tmap.theta0 for t in self.terms])
        self.lower = np.concatenate([t.tmap.lower for t in self.terms])
        self.is_diag = np.concatenate([t.tmap.is_diag for t in self.terms])
        tb = np.cumsum([0] + [t.n_theta for t in self.terms])
        ub = np.cumsum([0] + [t.q for t in self.terms])
        self.theta_slices = [slice(int(a), int(b)) for a, b in zip(tb[:-1], tb[1:], strict=True)]
        self.u_slices = [slice(int(a), int(b)) for a, b in zip(ub[:-1], ub[1:], strict=True)]
        # Orthonormal basis of X, with a positive diagonal of R (so RX = Rᵀ RX_Q is a Cholesky factor).
        if self.p:
            Q, R = qr if qr is not None else np.linalg.qr(X)
            s = np.where(np.diag(R) < 0, -1.0, 1.0)
            self.Q, self.R = Q * s, R * s[:, None]
            self.logdetR2 = 2.0 * float(np.sum(np.log(np.diag(self.R))))
        else:
            self.Q, self.R, self.logdetR2 = np.empty((self.n, 0)), np.empty((0, 0)), 0.0
        self._unweighted: _CrossProducts | None = None
        self._wscalar: _WeightedScalar | bool | None = None  # weighted path's indices, built on first use
        # Sparse random-effects matrices, needed only with several terms (values are the term columns).
        self._Zsp = [self._term_sparse(t) for t in self.terms] if len(self.terms) > 1 else []
        # Terms 2..K side by side (every solve needs Z_rᵀ y): built once.
        self._Zr = sp.hstack(self._Zsp[1:], format="csr") if len(self.terms) > 1 else None

    # ------------------------------------------------------------ structure
    @staticmethod
    def _term_sparse(t: RandomEffectsTerm) -> sp.csr_matrix:
        n, k = t.Z.shape
        rows = np.repeat(np.arange(n), k)
        cols = (t.codes[:, None] * k + np.arange(k)[None, :]).ravel()
        return sp.csr_matrix((t.Z.ravel(), (rows, cols)), shape=(n, t.q))

    def split_theta(self, theta: np.ndarray) -> list[np.ndarray]:
        theta = np.asarray(theta, dtype=float)
        if theta.shape != (self.n_theta,):
            raise ValueError(f"theta must have {self.n_theta} values, got shape {theta.shape}.")
        return [theta[s] for s in self.theta_slices]

    def split_u(self, u: np.ndarray) -> list[np.ndarray]:
        """Split a flat (q,) vector into per-term (levels, k) arrays."""
        return [u[s].reshape(t.nlevels, t.k) for s, t in zip(self.u_slices, self.terms, strict=True)]

    def canonical(self, theta: np.ndarray) -> np.ndarray:
        """θ with a non-negative diagonal in every Λ (the same model)."""
        parts = self.split_theta(theta)
        return np.concatenate([t.tmap.canonical(th) for t, th in zip(self.terms, parts, strict=True)])

    def Lambdas(self, theta: np.ndarray) -> list[np.ndarray]:
        return [t.tmap.Lambda(th) for t, th in zip(self.terms, self.split_theta(theta), strict=True)]

    def _Lambda_rest(self, lams: list[np.ndarray]) -> sp.csr_matrix:
        """Block-diagonal Λ of terms 2..K as a sparse matrix."""
        parts = []
        for t, lam in zip(self.terms[1:], lams[1:], strict=True):
            if t.k == 1:
                parts.append(sp.diags(np.full(t.nlevels, lam[0, 0])))
            else:
                data = np.broadcast_to(lam, (t.nlevels, t.k, t.k))
                parts.append(sp.bsr_matrix((np.ascontiguousarray(data), np.arange(t.nlevels),
                                            np.arange(t.nlevels + 1)), shape=(t.q, t.q)))
        return sp.block_diag(parts, format="csr")

    def _lambda_rest_diag(self, lams: list[np.ndarray]) -> np.ndarray:
        """Diagonal of Λ for terms 2..K when every one is scalar."""
        return np.concatenate([np.full(t.nlevels, lam[0, 0]) for t, lam in
                               zip(self.terms[1:], lams[1:], strict=True)])

    def _Lambda_rest_dense(self, lams: list[np.ndarray]) -> np.ndarray:
        """Block-diagonal Λ of terms 2..K as a dense matrix (small ``qr`` only)."""
        qr = sum(t.q for t in self.terms[1:])
        out = np.zeros((qr, qr))
        off = 0
        for t, lam in zip(self.terms[1:], lams[1:], strict=True):
            base = off + np.arange(t.nlevels)[:, None, None] * t.k
            a = np.arange(t.k)
            rows = np.broadcast_to(base + a[None, :, None], (t.nlevels, t.k, t.k))
            cols = np.broadcast_to(base + a[None, None, :], (t.nlevels, t.k, t.k))
            out[rows, cols] = lam
            off += t.q
        return out

    # ------------------------------------------------------- cross-products
    def _crossproducts(self, sqrtw: np.ndarray | None) -> _CrossProducts:
        if sqrtw is None and self._unweighted is not None:
            return self._unweighted
        w = None if sqrtw is None else np.asarray(sqrtw, dtype=float) ** 2
        t1 = self.terms[0]
        J1, k1, p = t1.nlevels, t1.k, self.p
        Z1 = t1.Z if w is None else t1.Z * w[:, None]
        S1 = np.empty((J1, k1, k1))
        ZQ1 = np.empty((J1, k1, p))
        for a in range(k1):
            za = Z1[:, a]
            for b in range(a, k1):
                s = group_sum(t1.codes, za * t1.Z[:, b], J1)
                S1[:, a, b] = s
                S1[:, b, a] = s
            for c in range(p):
                ZQ1[:, a, c] = group_sum(t1.codes, za * self.Q[:, c], J1)
        Qw = self.Q if w is None else self.Q * w[:, None]
        QQ = np.eye(p) if w is None else self.Q.T @ Qw
        cp = _CrossProducts(S1=S1, ZQ1=ZQ1, QQ=QQ)
        if len(self.terms) > 1:
            Zr = self._Zr
            Zrw = Zr if w is None else sp.diags(w) @ Zr
            cp.Srr = (Zrw.T @ Zr).toarray()
            cp.C = (self._Zsp[0].T @ Zrw).tocsr()
            if cp.C.shape[0] * cp.C.shape[1] <= _DENSE_CROSS_MAX:
                cp.Cd = cp.C.toarray()
            cp.ZQr = np.asarray(Zrw.T @ self.Q)
            if sqrtw is None and cp.Cd is None and all(t.k == 1 for t in self.terms):
                cp.pairs = RowOuterProducts.build(cp.C)
        if sqrtw is None:
            self._unweighted = cp
        return cp

    def _weighted_scalar(self) -> _WeightedScalar | None:
        """Index arrays for the weighted cross-products when every term is scalar (built once).

        PIRLS factors ``Λᵀ Zᵀ W Z Λ + I`` at new weights in every iteration.
        With scalar terms each cross-product is a weighted count of rows per
        (level, level) pair, so ``np.bincount`` over fixed indices gives them
        all without building sparse matrices. ``None`` when a term is not
        scalar or the block between the first term and the others would be
        too large to keep dense (the general path is used then).
        """
        if self._wscalar is not None:
            return self._wscalar or None
        if any(t.k != 1 for t in self.terms):
            self._wscalar = False
            return None
        t1, rest = self.terms[0], self.terms[1:]
        q1, qr, p = t1.q, sum(t.q for t in rest), self.p
        if q1 * qr > _DENSE_CROSS_MAX:
            self._wscalar = False
            return None
        c1 = t1.codes.astype(np.intp)
        z1 = np.ascontiguousarray(t1.Z[:, 0], dtype=float)
        offs = np.cumsum([0] + [t.q for t in rest])
        gr = [off + t.codes.astype(np.intp) for off, t in zip(offs[:-1], rest, strict=True)]
        zr = [np.ascontiguousarray(t.Z[:, 0], dtype=float) for t in rest]
        ws = _WeightedScalar(q1=q1, qr=qr, c1=c1, z1=z1,
                             idx_q1=(c1[:, None] * p + np.arange(p)[None, :]).ravel())
        if rest:
            ws.gr = np.concatenate(gr)
            ws.zr = np.concatenate(zr)
            ws.idx_c = np.concatenate([c1 * qr + g for g in gr])
            ws.z_c = np.concatenate([z1 * z for z in zr])
            pairs = [(a, b) for a in range(len(rest)) for b in range(len(rest))]
            ws.idx_s = np.concatenate([gr[a] * qr + gr[b] for a, b in pairs])
            ws.z_s = np.concatenate([zr[a] * zr[b] for a, b in pairs])
            ws.idx_qr = np.concatenate([(g[:, None] * p + np.arange(p)[None, :]).ravel() for g in gr])
        self._wscalar = ws
        return ws

    def _factorize_weighted_scalar(self, ws: _WeightedScalar, lams: list[np.ndarray], sqrtw: np.ndarray,
                                   theta: np.ndarray) -> Factorization:
        """:meth:`factorize_lambdas` with weights when every term is scalar.

        The same blocked factor as the general path: ``L_1`` is diagonal,
        ``L_1² = 1 + λ_1² Z_1ᵀWZ_1``; ``G = diag(λ_1/L_1) C diag(λ_r)`` with
        ``C = Z_1ᵀ W Z_r`` (dense); ``L_rr`` the Cholesky factor of
        ``diag(λ_r) Z_rᵀWZ_r diag(λ_r) + I − GᵀG``. Cross-products by
        ``np.bincount`` over the fixed indices of :meth:`_weighted_scalar`;
        LAPACK is called directly for the small factorizations (scipy's
        wrappers cost more than the work).
        """
        w = sqrtw * sqrtw
        p = self.p
        lam1 = float(lams[0][0, 0])
        wz1 = w * ws.z1
        S1 = np.bincount(ws.c1, weights=wz1 * ws.z1, minlength=ws.q1)
        L1sq = 1.0 + lam1 * lam1 * S1
        L1d = np.sqrt(L1sq)
        Qw = self.Q * w[:, None]
        if p:
            ZQ1 = np.bincount(ws.idx_q1, weights=(self.Q * wz1[:, None]).ravel(),
                              minlength=ws.q1 * p).reshape(ws.q1, p)
        else:
            ZQ1 = np.zeros((ws.q1, 0))
        RZX1f = ZQ1 * (lam1 / L1d)[:, None]  # (q1, p)
        schur = Qw.T @ self.Q - RZX1f.T @ RZX1f
        ldL2 = float(np.sum(np.log(L1sq)))
        G = Lrr = RZXr = Lam_r = None
        if len(self.terms) > 1:
            qr, K = ws.qr, len(self.terms) - 1
            lr = self._lambda_rest_diag(lams)
            wr = np.tile(w, K) if K > 1 else w
            Cd = np.bincount(ws.idx_c, weights=wr * ws.z_c, minlength=ws.q1 * qr).reshape(ws.q1, qr)
            Srr = np.bincount(ws.idx_s, weights=(np.tile(w, K * K) if K > 1 else w) * ws.z_s,
                              minlength=qr * qr).reshape(qr, qr)
            ZQr = np.bincount(ws.idx_qr, weights=(np.tile(Qw, (K, 1)) * ws.zr[:, None]).ravel() if p else None,
                              minlength=qr * p).reshape(qr, p) if p else np.zeros((qr, 0))
            l1 = lam1 / L1d
            G = (Cd * l1[:, None]) * lr[None, :]
            Arr = Srr * lr[:, None] * lr[None, :] - G.T @ G
            Arr.flat[::qr + 1] += 1.0
            Lrr, info = _lapack.dpotrf(Arr, lower=1, clean=1, overwrite_a=1)
            if info != 0:
                raise np.linalg.LinAlgError("matrix not positive definite")
            Lam_r = np.diag(lr)  # dense like Arr (qr is small here); a sparse diagonal costs more to build
            if p:
                # L_rr⁻¹ by LAPACK's unblocked trtri and a product: OpenBLAS threads even a tiny
                # trsm, which on a busy machine costs a hundred times the solve (L_rr ≥ I: stable).
                Lrr_inv, info = _lapack.dtrtri(Lrr, lower=1)
                RZXr = Lrr_inv @ (lr[:, None] * ZQr - G.T @ RZX1f)
                schur -= RZXr.T @ RZXr
            else:
                RZXr = np.zeros((qr, 0))
            ldL2 += 2.0 * float(np.sum(np.log(np.diag(Lrr))))
        RXq, ldRX2 = self._fixed_effects_factor(schur)
        return Factorization(predictor=self, theta=theta.copy(), sqrtw=sqrtw, Lambdas=lams, L1=L1d[:, None, None],
                             RZX1=RZX1f[:, None, :], G=G, Lrr=Lrr, RZXr=RZXr, Lam_r=Lam_r, RXq=RXq,
                             ldL2=ldL2, ldRX2=ldRX2)

    def _rest_crossprod_y(self, yw: np.ndarray) -> np.ndarray:
        """``Z_rᵀ yw`` for terms 2..K (``yw`` already weighted)."""
        ws = self._weighted_scalar()
        if ws is not None:
            K = len(self.terms) - 1
            return np.bincount(ws.gr, weights=(np.tile(yw, K) if K > 1 else yw) * ws.zr, minlength=ws.qr)
        return np.asarray(self._Zr.T @ yw)

    # ------------------------------------------------------------ factorize
    def _fixed_effects_factor(self, schur: np.ndarray) -> tuple[np.ndarray, float]:
        """Cholesky factor of the fixed effects' Schur complement (Q basis) and ``log |R_X|²`` for X."""
        if not self.p:
            return np.empty((0, 0)), 0.0
        try:
            RXq = np.linalg.cholesky(schur)
        except np.linalg.LinAlgError:
            raise np.linalg.LinAlgError(
                "The fixed-effects cross-product is not positive definite at this θ; "
                "the fixed-effect design may be collinear with the random effects."
            ) from None
        return RXq, 2.0 * float(np.sum(np.log(np.diag(RXq)))) + self.logdetR2

    def factorize(self, theta: np.ndarray, sqrtw: np.ndarray | None = None) -> Factorization:
        """Factor ``Λᵀ Zᵀ W Z Λ + I`` (blocked) and the fixed-effects blocks, ``W = diag(sqrtw**2)``.

        Raises ``numpy.linalg.LinAlgError`` where a block is not positive
        definite (e.g. at a θ for which the fixed effects are collinear with
        the random effects).
        """
        theta = np.asarray(theta, dtype=float)
        return self.factorize_lambdas(self.Lambdas(theta), sqrtw, theta=theta)

    def factorize_lambdas(self, lams: list[np.ndarray], sqrtw: np.ndarray | None = None, *,
                          theta: np.ndarray | None = None) -> Factorization:
        """:meth:`factorize` for given ``k × k`` factors Λ (any square matrices, one per term).

        The model depends on each Λ only through ΛΛᵀ, so the optimiser may
        search in a better-conditioned parametrisation than lme4's θ.
        """
        if sqrtw is not None:
            sqrtw = np.asarray(sqrtw, dtype=float)
            if sqrtw.shape != (self.n,):
                raise ValueError(f"sqrtw must have shape ({self.n},), got {sqrtw.shape}.")
        theta = np.full(self.n_theta, np.nan) if theta is None else theta
        if sqrtw is not None:
            ws = self._weighted_scalar()
            if ws is not None:
                return self._factorize_weighted_scalar(ws, lams, sqrtw, theta)
        cp = self._crossproducts(sqrtw)
        t1, lam1 = self.terms[0], lams[0]
        J1, k1, p = t1.nlevels, t1.k, self.p
        A1 = lmul(lam1.T, rmul(cp.S1, lam1))
        A1[:, np.arange(k1), np.arange(k1)] += 1.0
        L1 = batched_cholesky(A1)
        RZX1 = np.ascontiguousarray(solve_lower(L1, lmul(lam1.T, cp.ZQ1)))  # (J1, k1, p)
        RZX1f = RZX1.reshape(J1 * k1, p)
        schur = cp.QQ - RZX1f.T @ RZX1f
        ldL2 = 2.0 * float(np.sum(np.log(np.diagonal(L1, axis1=1, axis2=2))))
        G = Lrr = RZXr = Lam_r = None
        if len(self.terms) > 1:
            if cp.pairs is not None:
                # Scalar terms: Λ's are diagonal, G = diag(l1) C diag(lr) with l1 = λ_1 / L_1,
                # and GᵀG = diag(lr) Cᵀ diag(l1²) C diag(lr), accumulated from fixed pairs.
                lr = self._lambda_rest_diag(lams)
                Lam_r = sp.diags(lr, format="csr")
                l1 = lam1[0, 0] / L1[:, 0, 0]
                # Fortran order, lower triangle: what LAPACK's Cholesky reads, without a copy.
                Arr = cp.Srr.T - cp.pairs.lower(l1 * l1)
                Arr *= lr[:, None]
                Arr *= lr[None, :]
                C = cp.C
                G = sp.csr_matrix((C.data * np.repeat(l1, np.diff(C.indptr)) * lr[C.indices],
                                   C.indices, C.indptr), shape=C.shape)
                Arr[np.diag_indices_from(Arr)] += 1.0
                Lrr = _cholesky_lower(Arr)
                RZXr = solve_triangular(Lrr, lr[:, None] * cp.ZQr - np.asarray(G.T @ RZX1f),
                                        lower=True, check_finite=False)
                schur -= RZXr.T @ RZXr
                ldL2 += 2.0 * float(np.sum(np.log(np.diag(Lrr))))
            elif cp.Cd is not None:
                # Small enough for dense products (cheaper than scipy.sparse's per-call overhead).
                Lam_r = Lr = self._Lambda_rest_dense(lams)
                CL = lmul(lam1.T, cp.Cd.reshape(J1, k1, -1))  # Λ_1ᵀ C, level by level
                G = solve_lower(L1, CL).reshape(J1 * k1, -1) @ Lr
                Arr = Lr.T @ cp.Srr @ Lr - G.T @ G
            else:
                Lam_r = self._Lambda_rest(lams)
                # L_1⁻¹ Λ_1ᵀ as a block-diagonal sparse matrix (J1 blocks of k1 × k1).
                B1 = solve_lower(L1, np.broadcast_to(lam1.T, (J1, k1, k1)).copy())
                if k1 == 1:
                    B1s = sp.diags(B1[:, 0, 0])
                else:
                    B1s = sp.bsr_matrix((B1, np.arange(J1), np.arange(J1 + 1)), shape=(J1 * k1, J1 * k1))
                G = (B1s @ cp.C @ Lam_r).tocsr()
                LtS = np.asarray(Lam_r.T @ cp.Srr)
                Arr = np.asarray(Lam_r.T @ LtS.T)
                Arr -= (G.T @ G).toarray()
            if cp.pairs is None:
                Arr[np.diag_indices_from(Arr)] += 1.0
                Lrr = np.linalg.cholesky(Arr)
                RZXr = solve_triangular(Lrr, np.asarray(Lam_r.T @ cp.ZQr) - np.asarray(G.T @ RZX1f),
                                        lower=True, check_finite=False)
                schur -= RZXr.T @ RZXr
                ldL2 += 2.0 * float(np.sum(np.log(np.diag(Lrr))))
        RXq, ldRX2 = self._fixed_effects_factor(schur)
        return Factorization(predictor=self, theta=theta.copy(), sqrtw=sqrtw, Lambdas=lams, L1=L1,
                             RZX1=RZX1, G=G, Lrr=Lrr, RZXr=RZXr, Lam_r=Lam_r, RXq=RXq,
                             ldL2=ldL2, ldRX2=ldRX2)

    # ------------------------------------------------------- linear predictor
    def zlambda(self, theta: np.ndarray, u: np.ndarray) -> np.ndarray:
        """``Z Λ_θ u`` for ``u`` of shape (q,) or (q, m) → (n,) or (n, m)."""
        u = np.asarray(u, dtype=float)
        flat = u.ndim == 1
        U = u[:, None] if flat else u
        if U.shape[0] != self.q:
            raise ValueError(f"u must have {self.q} rows, got {U.shape[0]}.")
        out = np.zeros((self.n, U.shape[1]))
        for t, lam, s in zip(self.terms, self.Lambdas(theta), self.u_slices, strict=True):
            B = U[s].reshape(t.nlevels, t.k, -1)  # (J, k, m)
            B = np.einsum("ab,jbm->jam", lam, B)
            out += np.einsum("na,nam->nm", t.Z, B[t.codes])
        return out[:, 0] if flat else out

    def _zb(self, b_blocks: list[np.ndarray]) -> np.ndarray:
        eta = np.zeros(self.n)
        for t, b in zip(self.terms, b_blocks, strict=True):
            eta += np.einsum("nk,nk->n", t.Z, b[t.codes])
        return eta

    def project(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(a, y − Q a)`` with ``a = Qᵀ y`` (re-orthogonalised once)."""
        Q = self.Q
        a = np.einsum("ij,i->j", Q, y)
        r = y - np.einsum("ij,j->i", Q, a)
        if not _sumsq(r) > 1e-6 * _sumsq(y):  # y nearly in span(X): cancellation; project once more
            a2 = np.einsum("ij,i->j", Q, r)
            a, r = a + a2, r - np.einsum("ij,j->i", Q, a2)
        return a, r

    def response_stats(self, y: np.ndarray, sqrtw: np.ndarray | None = None) -> _ResponseStats:
        """Cross-products of ``y`` (residualised on ``X``) with the design."""
        y = np.asarray(y, dtype=float)
        if y.shape != (self.n,):
            raise ValueError(f"y must have shape ({self.n},), got {y.shape}.")
        a, yr = self.project(y)
        w = None if sqrtw is None else np.asarray(sqrtw, dtype=float) ** 2
        yw = yr if w is None else yr * w
        t1 = self.terms[0]
        Zy1 = np.empty((t1.nlevels, t1.k))
        for c in range(t1.k):
            Zy1[:, c] = group_sum(t1.codes, t1.Z[:, c] * yw, t1.nlevels)
        if len(self.terms) == 1:
            Zyr = None
        elif w is not None:
            Zyr = self._rest_crossprod_y(yw)
        else:
            Zyr = np.asarray(self._Zr.T @ yw)
        Qy = np.zeros(self.p) if w is None else self.Q.T @ yw
        return _ResponseStats(a=a, yr=yr, Zy1=Zy1, Zyr=Zyr, Qy=Qy, yy=float(np.einsum("i,i->", yr, yw)))


@dataclass(eq=False)
class _ResponseStats:
    a: np.ndarray  # Qᵀy: β in the Q basis of the part of y in span(X)
    yr: np.ndarray  # y − Q a
    Zy1: np.ndarray  # (J1, k1)
    Zyr: np.ndarray | None  # (qr,)
    Qy: np.ndarray  # Qᵀ W yr (0 without weights)
    yy: float  # yrᵀ W yr


@dataclass(eq=False)
class Factorization:
    """The blocked factor ``L_θ`` and the fixed-effects blocks at one θ.

    Attributes
    ----------
    theta : ndarray
    ldL2 : float
        ``log |L_θ|²`` (with the weights).
    ldRX2 : float
        ``log |R_X|²`` for the caller's ``X``.
    """

    predictor: LinearPredictor
    theta: np.ndarray
    sqrtw: np.ndarray | None
    Lambdas: list[np.ndarray]
    L1: np.ndarray
    RZX1: np.ndarray
    G: sp.csr_matrix | None
    Lrr: np.ndarray | None
    RZXr: np.ndarray | None
    Lam_r: sp.csr_matrix | None
    RXq: np.ndarray
    ldL2: float
    ldRX2: float

    @property
    def RX(self) -> np.ndarray:
        """Lower Cholesky factor of the Schur complement for ``X``: ``Rᵀ RX_Q``."""
        return self.predictor.R.T @ self.RXq

    # --------------------------------------------------------------- solves
    def solve(self, y: np.ndarray) -> PLSSolution:
        """Joint PLS: minimise ‖√w ⊙ (y − Xβ − ZΛu)‖² + ‖u‖² over (β, u)."""
        st = self.predictor.response_stats(y, self.sqrtw)
        return self._solve_stats(st, with_beta=True, explicit=True)

    def residual(self, v: np.ndarray) -> np.ndarray:
        """``P v``: the residual ``v − X β̂_v − Z b̂_v`` of the joint PLS fit to ``v``.

        Unweighted, ``P = V⁻¹ − V⁻¹X(XᵀV⁻¹X)⁻¹XᵀV⁻¹`` with ``V = I + ZΛΛᵀZᵀ``
        (the REML projection, up to σ²); computed without forming ``V``.
        """
        lp = self.predictor
        st = lp.response_stats(np.asarray(v, dtype=float), self.sqrtw)
        sol = self._solve_stats(st, with_beta=True, explicit=False)
        r = st.yr - lp._zb(lp.split_u(sol.b))
        if lp.p:
            r = r - lp.Q @ sol.beta_q
        return r

    def solve_u(self, y: np.ndarray) -> PLSSolution:
        """u only (β treated as 0: the caller passes ``y − Xβ − offset``)."""
        lp = self.predictor
        y = np.asarray(y, dtype=float)
        w = None if self.sqrtw is None else self.sqrtw**2
        yw = y if w is None else y * w
        t1 = lp.terms[0]
        Zy1 = np.empty((t1.nlevels, t1.k))
        for c in range(t1.k):
            Zy1[:, c] = group_sum(t1.codes, t1.Z[:, c] * yw, t1.nlevels)
        Zyr = lp._rest_crossprod_y(yw) if len(lp.terms) > 1 else None
        st = _ResponseStats(a=np.zeros(lp.p), yr=y, Zy1=Zy1, Zyr=Zyr, Qy=np.zeros(lp.p), yy=float(y @ yw))
        return self._solve_stats(st, with_beta=False, explicit=True)

    def _solve_stats(self, st: _ResponseStats, *, with_beta: bool, explicit: bool) -> PLSSolution:
        lp = self.predictor
        t1, lam1 = lp.terms[0], self.Lambdas[0]
        J1, k1, p = t1.nlevels, t1.k, lp.p
        cu1 = np.ascontiguousarray(solve_lower(self.L1, (st.Zy1 @ lam1)[:, :, None])[:, :, 0])
        cu1f = cu1.reshape(-1)
        cc = _sumsq(cu1f)
        cur = None
        if self.Lrr is not None:
            cur = solve_triangular(self.Lrr, np.asarray(self.Lam_r.T @ st.Zyr) - self.G.T @ cu1f,
                                   lower=True, check_finite=False)
            cc += _sumsq(cur)
        if with_beta and p:
            rhs = st.Qy - self.RZX1.reshape(J1 * k1, p).T @ cu1f
            if cur is not None:
                rhs = rhs - self.RZXr.T @ cur
            bq = cho_solve((self.RXq, True), rhs, check_finite=False)
            cheap = st.yy - cc - float(rhs @ bq)
        else:
            bq = np.zeros(p)
            cheap = st.yy - cc
        ur = None
        if cur is not None:
            ur = solve_triangular(self.Lrr, cur - (self.RZXr @ bq if with_beta and p else 0.0),
                                  lower=True, trans="T", check_finite=False)
        resid1 = cu1 - (self.RZX1.reshape(J1 * k1, p).dot(bq).reshape(J1, k1) if with_beta and p else 0.0)
        if ur is not None:
            resid1 = resid1 - np.asarray(self.G @ ur).reshape(J1, k1)
        u1 = np.ascontiguousarray(solve_upper_t(self.L1, resid1[:, :, None])[:, :, 0])
        u = u1.reshape(-1) if ur is None else np.concatenate([u1.reshape(-1), ur])
        b = np.concatenate([(uk @ lam.T).reshape(-1) for uk, lam in
                            zip(lp.split_u(u), self.Lambdas, strict=True)])
        pwrss = cheap
        # The cheap value cancels when the fit leaves little residual; then compute it
        # from the residuals themselves.
        if explicit or not cheap > 1e-4 * st.yy:
            r = st.yr - (lp.Q @ bq if with_beta and p else 0.0) - lp._zb(lp.split_u(b))
            if self.sqrtw is not None:
                r = r * self.sqrtw
            pwrss = _sumsq(r) + _sumsq(u)
        beta_q = bq + st.a if with_beta else np.zeros(p)
        beta = solve_triangular(lp.R, beta_q, lower=False, check_finite=False) if with_beta and p else np.zeros(p)
        return PLSSolution(theta=self.theta.copy(), beta=beta, u=u, b=b, pwrss=pwrss, ldL2=self.ldL2,
                           ldRX2=self.ldRX2, RX=self.RX, n=lp.n, p=p, factor=self, beta_q=bq)

    # ----------------------------------------------------- conditional variances
    def condvar_blocks(self) -> list[np.ndarray]:
        """Diagonal ``k × k`` blocks of ``Λ (Λᵀ Zᵀ W Z Λ + I)⁻¹ Λᵀ``, per term, shape (levels, k, k).

        Multiplied by σ² these are lme4's conditional variances
        (``ranef(m, condVar = TRUE)``), conditional on β̂ and θ.
        """
        lp = self.predictor
        t1, lam1 = lp.terms[0], self.Lambdas[0]
        J1, k1 = t1.nlevels, t1.k
        L1inv = np.linalg.inv(self.L1)  # (J1, k1, k1) lower
        blk1 = bmm(np.swapaxes(L1inv, 1, 2), L1inv)
        out = []
        if self.Lrr is not None:
            if k1 == 1:
                Linv_s = sp.diags(L1inv[:, 0, 0])
            else:
                Linv_s = sp.bsr_matrix((L1inv, np.arange(J1), np.arange(J1 + 1)), shape=(J1 * k1, J1 * k1))
            M = self.G.T @ Linv_s
            M = M.toarray() if sp.issparse(M) else np.asarray(M)
            H = solve_triangular(self.Lrr, M, lower=True, check_finite=False).reshape(-1, J1, k1)
            blk1 = blk1 + np.einsum("rja,rjb->jab", H, H)
        out.append(lmul(lam1, rmul(blk1, lam1.T)))
        if self.Lrr is not None:
            Lrr_inv = solve_triangular(self.Lrr, np.eye(self.Lrr.shape[0]), lower=True, check_finite=False)
            off = 0
            for t, lam in zip(lp.terms[1:], self.Lambdas[1:], strict=True):
                cols = Lrr_inv[:, off:off + t.q].reshape(-1, t.nlevels, t.k)
                blk = np.einsum("rja,rjb->jab", cols, cols)
                out.append(lmul(lam, rmul(blk, lam.T)))
                off += t.q
        return out


def frame_of(blocks: list[np.ndarray], terms: Sequence[RandomEffectsTerm]) -> dict[str, pd.DataFrame]:
    """Per-term (levels × k) arrays as DataFrames keyed by factor name."""
    return {t.name: pd.DataFrame(b, index=t.levels, columns=t.z_names) for b, t in zip(blocks, terms, strict=True)}
