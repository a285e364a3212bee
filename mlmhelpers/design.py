"""The model's data structures: one random-effects term per grouping factor.

A linear mixed model ``y = X β + Σ_k Z_k b_k + ε`` is described by its
fixed-effects matrix ``X`` and a list of :class:`RandomEffectsTerm`, one per
grouping factor (after lme4's expansion of ``a/b`` into ``a`` and ``b:a``).
A term holds the level code of every row, the term's model-matrix columns
(``k`` of them, e.g. an intercept and a slope) and the structure of their
covariance (one unstructured block, or several for ``||`` or for several
``( … | g)`` terms on the same factor). Its random effects are ordered level
by level, as in lme4: ``b_k`` has ``J_k · k`` entries, the ``k`` effects of
level 1 first.

This follows MixedModels.jl's ``ReMat`` and lme4's ``reTrms``; the engine
(:mod:`mlmhelpers.predictor`) builds its blocked Cholesky factor from these.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["ThetaMap", "RandomEffectsTerm", "independent_columns", "independent_columns_qr"]


class ThetaMap:
    """Map one term's parameter vector θ to its ``k × k`` lower-triangular factor Λ.

    Parameters
    ----------
    q : int
        Number of model-matrix columns of the term (``k``).
    blocks : list of (start, stop, correlated)
        Column ranges sharing an unstructured covariance block; an
        uncorrelated term (``||``) contributes one 1×1 block per column.

    Notes
    -----
    θ lists, block by block, the lower triangle of each block in column-major
    order, exactly like lme4's ``getME(m, "theta")``: for a 2×2 block
    ``(λ11, λ21, λ22)``.

    Examples
    --------
    >>> from mlmhelpers.design import ThetaMap
    >>> t = ThetaMap(2, [(0, 2, True)])
    >>> t.Lambda([1.0, 0.5, 2.0])
    array([[1. , 0. ],
           [0.5, 2. ]])
    """

    def __init__(self, q: int, blocks: list[tuple[int, int, bool]]):
        rows, cols = [], []
        for start, stop, _ in blocks:
            for c in range(start, stop):
                for r in range(c, stop):
                    rows.append(r)
                    cols.append(c)
        self.q = q
        self.rows = np.array(rows, dtype=np.intp)
        self.cols = np.array(cols, dtype=np.intp)
        self.is_diag = self.rows == self.cols
        self.blocks = list(blocks)

    @property
    def size(self) -> int:
        return len(self.rows)

    @property
    def lower(self) -> np.ndarray:
        return np.where(self.is_diag, 0.0, -np.inf)

    @property
    def theta0(self) -> np.ndarray:
        """lme4's default start: identity Λ."""
        return self.is_diag.astype(float)

    def bounds(self) -> list[tuple[float | None, float | None]]:
        return [(0.0, None) if d else (None, None) for d in self.is_diag]

    def canonical(self, theta: np.ndarray) -> np.ndarray:
        """The equivalent θ with a non-negative diagonal (same ΛΛᵀ).

        Negating a column of Λ leaves ΛΛᵀ, and so the model, unchanged.
        """
        theta = np.asarray(theta, dtype=float).copy()
        for c in np.unique(self.cols):
            diag = np.flatnonzero((self.cols == c) & self.is_diag)
            if theta[diag[0]] < 0:
                theta[self.cols == c] *= -1.0
        return theta

    def Lambda(self, theta) -> np.ndarray:
        lam = np.zeros((self.q, self.q))
        lam[self.rows, self.cols] = np.asarray(theta, dtype=float)
        return lam


@dataclass(frozen=True, eq=False)
class RandomEffectsTerm:
    """The random effects of one grouping factor.

    Attributes
    ----------
    name : str
        The factor's name as lme4 prints it: ``"g"``, or ``"b:a"`` for the
        inner factor of ``(1 | a/b)``.
    codes : ndarray of int, shape (n,)
        Each row's level, an index into ``levels``.
    levels : pandas.Index
        Level labels, in lme4's order (sorted; for an interaction ``b:a``
        labels ``"b_level:a_level"``).
    Z : ndarray, shape (n, k)
        The term's model-matrix columns (intercept, slopes, factor dummies).
    z_names : list of str
        Names of the ``k`` columns, R style.
    blocks : list of (start, stop, correlated)
        Covariance blocks among the ``k`` columns (see :class:`ThetaMap`).
    exprs : tuple of str
        The expressions left of the bar, one per ``( … | g)`` term merged here.
    specs : tuple
        formulaic model specs of ``exprs``, to build ``Z`` for new data.
    columns : tuple of str
        The data columns whose combination is the factor (``("b", "a")`` for
        ``b:a``).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from mlmhelpers.design import RandomEffectsTerm
    >>> t = RandomEffectsTerm("g", np.array([0, 0, 1]), pd.Index(["a", "b"], name="g"),
    ...                       np.ones((3, 1)), ["(Intercept)"], [(0, 1, True)])
    >>> t.nlevels, t.k, t.q, t.tmap.size
    (2, 1, 2, 1)
    """

    name: str
    codes: np.ndarray
    levels: pd.Index
    Z: np.ndarray
    z_names: list[str]
    blocks: list[tuple[int, int, bool]]
    exprs: tuple[str, ...] = ()
    specs: tuple = ()
    columns: tuple[str, ...] = ()
    tmap: ThetaMap = field(init=False, repr=False)

    def __post_init__(self) -> None:
        Z = np.asarray(self.Z, dtype=float)
        if Z.ndim != 2 or Z.shape[0] != len(self.codes):
            raise ValueError(f"term {self.name!r}: Z must have one row per observation.")
        object.__setattr__(self, "Z", Z)
        object.__setattr__(self, "codes", np.asarray(self.codes, dtype=np.intp))
        object.__setattr__(self, "tmap", ThetaMap(Z.shape[1], list(self.blocks)))

    @property
    def nlevels(self) -> int:
        return len(self.levels)

    @property
    def k(self) -> int:
        """Columns per level."""
        return self.Z.shape[1]

    @property
    def q(self) -> int:
        """Number of random effects of this term, ``nlevels · k``."""
        return self.nlevels * self.k

    @property
    def n_theta(self) -> int:
        return self.tmap.size

    @functools.cached_property
    def _runs(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Starts and levels of the runs of equal codes, or None if the rows are not grouped
        (more than a quarter as many runs as rows)."""
        c = self.codes
        starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
        if len(starts) > max(1, c.size // 4):
            return None
        return starts, c[starts]

    def sum_by_level(self, values: np.ndarray) -> np.ndarray:
        """Sums of ``values`` over the rows of each level: (nlevels,) for a vector of n values, and
        (m, nlevels) for m vectors given as an (m, n) array (one vector per row).

        Data usually come grouped (the rows of a level next to each other):
        then the sums of the runs of equal codes (``np.add.reduceat``, a tight
        loop over contiguous memory) are added up by level. ``np.bincount``
        over all rows is slower there: on grouped rows each addition waits for
        the previous one to the same bin. Ungrouped rows use ``np.bincount``.
        """
        values = np.asarray(values, dtype=float)
        J = self.nlevels
        runs = self._runs
        if runs is not None:
            starts, codes = runs
            values = np.add.reduceat(values, starts, axis=-1)
        else:
            codes = self.codes
        if values.ndim == 1:
            return np.bincount(codes, weights=values, minlength=J)
        out = np.empty((values.shape[0], J))
        for k in range(values.shape[0]):
            out[k] = np.bincount(codes, weights=values[k], minlength=J)
        return out

    def block_labels(self) -> list[str]:
        """lme4's label of each covariance block: ``g``, ``g.1``, ``g.2``, …"""
        return [self.name if i == 0 else f"{self.name}.{i}" for i in range(len(self.blocks))]


def independent_columns(X: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    """Indices of the columns R keeps (see :func:`independent_columns_qr`).

    Examples
    --------
    >>> import numpy as np
    >>> from mlmhelpers.design import independent_columns
    >>> x = np.arange(5.0)
    >>> independent_columns(np.column_stack([np.ones(5), x, 2 * x, x**2])).tolist()
    [0, 1, 3]
    """
    return independent_columns_qr(X, tol)[0]


def independent_columns_qr(X: np.ndarray, tol: float = 1e-7) -> tuple[np.ndarray, tuple | None]:
    """Indices of the columns R keeps: each one not in the span of the kept earlier ones.

    This is what R's ``qr(X, tol = 1e-7)`` (LINPACK ``dqrdc2``, limited
    pivoting) and so lme4's ``chkRank.drop.cols`` decide: a column whose
    norm, after projecting out the columns kept before it, is below ``tol``
    times its own norm is dropped. One Householder QR (LAPACK) of the columns
    is computed; only when a column is dropped is the QR of the columns after
    it recomputed, orthogonalised against the kept ones, so the cost is
    ``O(n p²)`` for a full-rank matrix.

    Returns
    -------
    keep : ndarray of int
    qr : (Q, R) or None
        The thin QR of ``X`` when no column is dropped (the engine reuses
        it), else ``None``.
    """
    X = np.asarray(X, dtype=float)
    n, p = X.shape
    norms = np.linalg.norm(X, axis=0)
    keep: list[int] = []
    Q = np.empty((n, 0))
    remaining = [j for j in range(p) if norms[j] > 0]
    while remaining:
        B = X[:, remaining]
        if Q.shape[1]:
            B = B - Q @ (Q.T @ B)
            B = B - Q @ (Q.T @ B)  # twice is enough (Kahan–Parlett)
        if not keep and len(remaining) == p:
            Qb, Rb = np.linalg.qr(B)  # first pass: the whole QR, reused by the engine if full rank
        else:
            Qb, Rb = None, np.linalg.qr(B, mode="r")
        rel = np.abs(np.diag(Rb)) / norms[remaining]
        bad = np.flatnonzero(rel < tol)
        if bad.size == 0:
            keep.extend(remaining)
            if Qb is not None:
                return np.array(keep, dtype=np.intp), (Qb, Rb)
            break
        first = int(bad[0])
        Qb = Qb[:, :first] if Qb is not None else (np.linalg.qr(B[:, :first])[0] if first else np.empty((n, 0)))
        keep.extend(remaining[:first])
        Q = np.hstack([Q, Qb[:, :first]])
        remaining = remaining[first + 1:]
    return np.array(keep, dtype=np.intp), None
