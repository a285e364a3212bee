"""Batched kernels for stacks of small matrices: the first term's diagonal block.

A random-effects term with ``J`` levels and ``k`` columns per level has a
block-diagonal ``A = Λᵀ ZᵀZ Λ + I`` made of ``J`` small ``k × k`` blocks. These
kernels factor and solve all ``J`` blocks at once with a loop over the ``k``
columns, never over the levels: for the small ``k`` of random-effects terms
this is far faster than calling LAPACK once per level.
"""

from __future__ import annotations

import numpy as np

__all__ = ["group_sum", "batched_cholesky", "solve_lower", "solve_upper_t"]


def group_sum(groups: np.ndarray, weights: np.ndarray, J: int) -> np.ndarray:
    """Sum ``weights`` within each of the ``J`` groups (``np.bincount``)."""
    return np.bincount(groups, weights=weights, minlength=J)


def batched_cholesky(A: np.ndarray) -> np.ndarray:
    """Cholesky factors of a stack of small SPD matrices, shape (J, q, q).

    The loop runs over the ``q`` columns, never over the ``J`` groups; for
    the small ``q`` of random-effect terms this is far faster than calling
    LAPACK once per group.
    """
    J, q, _ = A.shape
    L = np.zeros_like(A)
    for i in range(q):
        for j in range(i + 1):
            s = A[:, i, j] - np.einsum("jk,jk->j", L[:, i, :j], L[:, j, :j]) if j else A[:, i, j].copy()
            if i == j:
                if not s.min() > 0:  # also catches NaN
                    raise np.linalg.LinAlgError("matrix not positive definite")
                L[:, i, i] = np.sqrt(s)
            else:
                L[:, i, j] = s / L[:, j, j]
    return L


def solve_lower(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Solve ``L_j X_j = B_j`` for lower-triangular ``L`` (J, q, q) and ``B`` (J, q, m)."""
    q = L.shape[1]
    X = np.empty_like(B)
    for i in range(q):
        acc = B[:, i, :]
        if i:
            acc = acc - np.einsum("jk,jkm->jm", L[:, i, :i], X[:, :i, :])
        X[:, i, :] = acc / L[:, i, i][:, None]
    return X


def solve_upper_t(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Solve ``L_jᵀ X_j = B_j`` for lower-triangular ``L`` (J, q, q) and ``B`` (J, q, m)."""
    q = L.shape[1]
    X = np.empty_like(B)
    for i in range(q - 1, -1, -1):
        acc = B[:, i, :]
        if i < q - 1:
            acc = acc - np.einsum("jk,jkm->jm", L[:, i + 1:, i], X[:, i + 1:, :])
        X[:, i, :] = acc / L[:, i, i][:, None]
    return X


def lmul(A: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``A @ X_j`` for a shared ``A`` (a × k) and a stack ``X`` (J, k, m), as one matrix product.

    NumPy's batched ``matmul`` pays a per-matrix overhead that dominates for
    the tiny matrices of random-effects terms; one GEMM on the reshaped stack
    does not.
    """
    J, k, m = X.shape
    out = A @ X.transpose(1, 0, 2).reshape(k, J * m)
    return np.ascontiguousarray(out.reshape(A.shape[0], J, m).transpose(1, 0, 2))


def rmul(X: np.ndarray, A: np.ndarray) -> np.ndarray:
    """``X_j @ A`` for a stack ``X`` (J, a, k) and a shared ``A`` (k, m), as one matrix product."""
    J, a, k = X.shape
    return (X.reshape(J * a, k) @ A).reshape(J, a, A.shape[1])


def bmm(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """``X_j @ Y_j`` for stacks (J, a, b) and (J, b, c): a loop over the small inner dimension."""
    out = X[:, :, 0, None] * Y[:, None, 0, :]
    for i in range(1, X.shape[2]):
        out += X[:, :, i, None] * Y[:, None, i, :]
    return out
