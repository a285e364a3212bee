"""Kenward–Roger: the adjusted covariance of β̂ and the denominator df, as pbkrtest computes them.

The marginal covariance of ``y`` is linear in the variance components
``ψ``: ``V = Σ_k ψ_k G_k + σ² I``, where each ``ψ_k`` is one entry (variance or
covariance) of a random-effects covariance block and ``G_k = Z D_k Zᵀ`` with
``D_k`` the 0/1 pattern of that entry, repeated over the groups. With
``Φ = (Xᵀ V⁻¹ X)⁻¹`` (lme4's ``vcov``), ``P_k = −Xᵀ V⁻¹ G_k V⁻¹ X`` and
``Q_kl = Xᵀ V⁻¹ G_k V⁻¹ G_l V⁻¹ X``, Kenward & Roger (1997, *Biometrics*
53(3)) adjust Φ for the uncertainty of ψ̂ (its REML covariance ``W``, twice the
inverse expected information):

    Φ_A = Φ + 2 Φ [Σ_kl W_kl (Q_kl − P_k Φ P_l)] Φ,

and choose the df and a scaling of the Wald F statistic so that it matches an
F distribution's first two moments. The code mirrors pbkrtest's
``vcovAdj`` / ``Lb_ddf`` / ``KRmodcomp`` (Halekoh & Højsgaard 2014,
*J. Stat. Softw.* 59(9)), but works in the ``q``-dimensional space of the
random effects (Woodbury identity), never with an ``n × n`` matrix.

Satterthwaite's method (:mod:`mlmhelpers.satterthwaite`) only changes the df;
Kenward–Roger also *enlarges the standard errors* (``Φ_A ≥ Φ``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["KRInfo", "kenward_roger_info", "kr_ddf", "kr_ftest"]


@dataclass(frozen=True)
class KRInfo:
    """pbkrtest's ``vcovAdj`` result: Φ_A with the ``P`` matrices and ``W``."""

    vcov: np.ndarray  # Φ (unadjusted)
    vcov_adj: np.ndarray  # Φ_A
    P: list  # P_k, (p, p) each
    W: np.ndarray  # 2 × inverse expected information of ψ


def _theta_is_diag(model) -> np.ndarray:
    """Which θ are diagonal entries of Λ (lower bound 0), from the engine's predictor or ThetaMap."""
    src = getattr(model, "predictor", None)
    if src is None:
        src = model.tmap
    return np.asarray(src.lower) == 0


def kenward_roger_info(model) -> KRInfo:
    """Kenward–Roger adjusted covariance of β̂ for a REML ``lmer`` fit (pbkrtest's ``vcovAdj``)."""
    cached = getattr(model, "_kr_cache", None)
    if cached is not None:
        return cached
    if not model.REML:
        raise ValueError("Kenward-Roger's method is only available for REML fits; refit with REML=True.")
    theta = np.asarray(model.sol.theta, dtype=float)
    k = len(theta)
    q = model.sol.u.size
    X = model.design.X
    n, p = X.shape
    s2 = model.sigma**2
    eye_q = np.eye(q)
    # A_k = Z E_k with E_k = ∂Λ/∂θ_k (Λ is linear in θ); Z is the sum over the diagonal θ.
    A = [model._zlambda(np.eye(k)[i], eye_q) for i in range(k)]
    diag = _theta_is_diag(model)
    Z = sum(A[i] for i in range(k) if diag[i])
    T = model._zlambda(theta, eye_q)  # Z Λ̂
    M = eye_q + T.T @ T
    Mc = np.linalg.cholesky(M)

    def vinv(B):  # V⁻¹ B = (B − T M⁻¹ Tᵀ B) / σ², for B of shape (n, m)
        return (B - T @ np.linalg.solve(Mc.T, np.linalg.solve(Mc, T.T @ B))) / s2

    # G_k = F_k H_kᵀ (low rank); the last component is the residual, G = I.
    F, H = [], []
    for i in range(k):
        if diag[i]:
            F.append(A[i])
            H.append(Z)
        else:
            F.append(np.hstack([A[i], Z]))
            H.append(np.hstack([Z, A[i]]))
    ng = k + 1
    Y = vinv(X)  # V⁻¹ X
    VF = [vinv(f) for f in F]
    VH = [vinv(h) for h in H]
    GY = [F[i] @ (H[i].T @ Y) for i in range(k)] + [Y]  # G_k V⁻¹ X
    VGY = [vinv(g) for g in GY]
    Phi = model.vcov.to_numpy()
    P = [-(Y.T @ g) for g in GY]
    P = [0.5 * (x + x.T) for x in P]
    Q = [[GY[i].T @ VGY[j] for j in range(ng)] for i in range(ng)]
    # tr(V⁻¹ G_i V⁻¹ G_j)
    K = np.empty((ng, ng))
    C = [[H[i].T @ VF[j] for j in range(k)] for i in range(k)]  # H_iᵀ V⁻¹ F_j
    for i in range(k):
        for j in range(i, k):
            K[i, j] = K[j, i] = float(np.sum(C[j][i].T * C[i][j]))  # tr(C_ji C_ij)
        K[i, k] = K[k, i] = float(np.sum(VH[i] * VF[i]))  # tr(Hᵀ V⁻² F)
    S = T.T @ T
    Kmat = np.linalg.solve(M, S)
    K[k, k] = (n - 2 * np.trace(Kmat) + np.sum(Kmat * Kmat.T)) / s2**2  # tr(V⁻²)
    IE2 = np.empty((ng, ng))
    for i in range(ng):
        PhiPi = Phi @ P[i]
        for j in range(i, ng):
            IE2[i, j] = IE2[j, i] = K[i, j] - 2 * np.sum(Phi * Q[i][j]) + np.sum(PhiPi * (P[j] @ Phi))
    condi = np.min(np.abs(np.linalg.eigvalsh(IE2)))
    W = 2 * (np.linalg.inv(IE2) if condi > 1e-10 else np.linalg.pinv(IE2))
    W = 0.5 * (W + W.T)
    U = np.zeros((p, p))
    for i in range(ng - 1):
        for j in range(i + 1, ng):
            U += W[i, j] * (Q[i][j] - P[i] @ Phi @ P[j])
    U = U + U.T
    for i in range(ng):
        U += W[i, i] * (Q[i][i] - P[i] @ Phi @ P[i])
    PhiA = Phi + 2 * Phi @ U @ Phi
    info = KRInfo(vcov=Phi, vcov_adj=PhiA, P=P, W=W)
    model._kr_cache = info  # computed once per fit
    return info


def _kr_moments(info: KRInfo, L: np.ndarray, q: int) -> tuple[float, float]:
    """pbkrtest's ``Lb_ddf`` / ``.KR_adjust`` core: returns (ddf, A2)."""
    Phi = info.vcov
    Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
    ThetaPhi = Theta @ Phi
    ng = len(info.P)
    u = [ThetaPhi @ info.P[i] @ Phi for i in range(ng)]
    tr = [np.trace(x) for x in u]
    A1 = A2 = 0.0
    for i in range(ng):
        for j in range(i, ng):
            e = 1.0 if i == j else 2.0
            A1 += e * info.W[i, j] * tr[i] * tr[j]
            A2 += e * info.W[i, j] * float(np.sum(u[i] * u[j].T))
    B = (A1 + 6 * A2) / (2 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    den = 3 * q + 2 * (1 - g)
    c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
    V0 = 1 + c1 * B
    V1 = 1 - c2 * B
    V2 = 1 - c3 * B
    V0 = 0.0 if abs(V0) < 1e-10 else V0
    num = 1 - A2 / q
    ratio = 1.0 if (abs(num) < 1e-14 and abs(V1) < 1e-14) else num / V1
    rho = ratio**2 * V0 / V2 / q
    return 4 + (q + 2) / (q * rho - 1), A2


def kr_ddf(model, L: np.ndarray) -> float:
    """Kenward–Roger denominator df for ``Lβ`` (pbkrtest's ``Lb_ddf``; ``q`` = rows of L)."""
    L = np.atleast_2d(np.asarray(L, dtype=float))
    return _kr_moments(kenward_roger_info(model), L, L.shape[0])[0]


def kr_ftest(model, L: np.ndarray, beta: np.ndarray | None = None) -> dict:
    """Kenward–Roger F test of ``Lβ = 0`` (pbkrtest's ``KRmodcomp``).

    Returns ``F_unscaled`` (Wald statistic with Φ_A over q), ``F`` (scaled),
    ``scaling``, ``ndf`` (rank of L) and ``ddf``.
    """
    info = kenward_roger_info(model)
    L = np.atleast_2d(np.asarray(L, dtype=float))
    q = int(np.linalg.matrix_rank(L))
    ddf, A2 = _kr_moments(info, L, q)
    scaling = 1.0 if abs(ddf - 2) < 0.01 else ddf * (1 - A2 / q) / (ddf - 2)
    Lb = L @ (model.fixef.to_numpy() if beta is None else np.asarray(beta, dtype=float))
    wald = float(Lb @ np.linalg.solve(L @ info.vcov_adj @ L.T, Lb))
    Fu = wald / q
    return {"F_unscaled": Fu, "F": scaling * Fu, "scaling": scaling, "ndf": q, "ddf": ddf}
