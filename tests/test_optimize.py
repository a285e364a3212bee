"""The optimiser: the fallback path (Powell and Nelder–Mead restarts when the gradient check fails) and Newton's method in φ = θ²."""

from __future__ import annotations

import numpy as np
import pytest

from mlmhelpers.optimize import optimize_theta

TARGET = np.array([2.0, -1.0])


def _kinked(theta):
    """A convex function with a kink at its minimum: the gradient never vanishes there."""
    return float(np.sum(np.abs(np.asarray(theta) - TARGET)) + 1.0)


def _kinked_grad(theta):
    return _kinked(theta), np.sign(np.asarray(theta) - TARGET)


def test_failed_check_runs_the_restarts_and_reports_no_convergence():
    r = optimize_theta(_kinked, _kinked_grad, theta0=np.array([1.0, 0.0]), is_diag=np.array([True, False]))
    assert r.optimizers[:1] == ["L-BFGS-B"] and "Powell" in r.optimizers and "Nelder-Mead" in r.optimizers
    # The restarts reach the minimum that the quasi-Newton search could not certify ...
    np.testing.assert_allclose(r.theta, TARGET, atol=1e-6)
    assert abs(r.fun - 1.0) < 1e-6
    # ... and the answer is still reported honestly as failing the gradient check.
    assert not r.converged
    assert r.message.startswith("Model failed to converge with max|H^-1 grad|")


def test_smooth_objective_takes_no_fallback():
    def f(t):
        return float((t[0] - 2.0) ** 2 + 3 * (t[1] + 1.0) ** 2 + 1.0)

    def fg(t):
        return f(t), np.array([2 * (t[0] - 2.0), 6 * (t[1] + 1.0)])

    r = optimize_theta(f, fg, theta0=np.array([1.0, 0.0]), is_diag=np.array([True, False]))
    assert r.converged and r.optimizers == ["L-BFGS-B"]
    np.testing.assert_allclose(r.theta, TARGET, atol=1e-8)


# Newton's method in φ = θ² (the crossed-model path): a criterion that is quadratic in φ.
PHI_OPT = np.array([0.25, 2.0])
HPHI = np.array([[4.0, 1.0], [1.0, 3.0]])


def _quadratic_in_phi(theta):
    dphi = np.asarray(theta) ** 2 - PHI_OPT
    return float(0.5 * dphi @ HPHI @ dphi + 7.0)


def _fgh(theta):
    theta = np.asarray(theta, dtype=float)
    gphi = HPHI @ (theta**2 - PHI_OPT)
    return _quadratic_in_phi(theta), 2.0 * theta * gphi, HPHI


def test_newton_with_the_exact_hessian_in_phi_takes_one_step():
    from mlmhelpers.optimize import _newton_search

    calls = []

    def fgh(th):
        calls.append(th)
        return _fgh(th)

    ok, fun, theta = _newton_search(fgh, _quadratic_in_phi, np.array([1.0, 1.0]))
    assert ok and len(calls) == 2  # the start and the optimum, where the decrease is zero
    np.testing.assert_allclose(theta, np.sqrt(PHI_OPT), rtol=1e-12)
    assert fun == pytest.approx(7.0, abs=1e-12)


def test_optimize_theta_uses_newton_and_certifies_the_optimum():
    r = optimize_theta(_quadratic_in_phi, lambda t: _fgh(t)[:2], theta0=np.array([1.0, 1.0]),
                       is_diag=np.array([True, True]), newton=_fgh)
    assert r.optimizers == ["Newton (average information)"] and r.converged
    np.testing.assert_allclose(r.theta, np.sqrt(PHI_OPT), rtol=1e-10)


def test_newton_gives_up_at_a_boundary_and_lbfgsb_finishes():
    """Optimum at φ₁ = 0 (a zero variance): Newton stops, the bounded search finds the boundary."""
    phi_opt = np.array([-0.5, 2.0])  # the unconstrained minimum is outside φ ≥ 0

    def f(theta):
        dphi = np.asarray(theta) ** 2 - phi_opt
        return float(0.5 * dphi @ HPHI @ dphi)

    def fgh(theta):
        theta = np.asarray(theta, dtype=float)
        gphi = HPHI @ (theta**2 - phi_opt)
        return f(theta), 2.0 * theta * gphi, HPHI

    r = optimize_theta(f, lambda t: fgh(t)[:2], theta0=np.array([1.0, 1.0]), is_diag=np.array([True, True]),
                       newton=fgh)
    assert r.optimizers[:2] == ["Newton (average information)", "L-BFGS-B"] and r.converged
    # On φ₁ = 0 the quadratic is least where H₂₁(0 − φ₁*) + H₂₂(φ₂ − φ₂*) = 0:
    phi2 = phi_opt[1] + HPHI[0, 1] / HPHI[1, 1] * phi_opt[0]
    np.testing.assert_allclose(r.theta, [0.0, np.sqrt(phi2)], atol=1e-6)


def test_newton_refuses_an_indefinite_hessian():
    from mlmhelpers.optimize import _newton_search

    def fgh(theta):
        f, g, _ = _fgh(theta)
        return f, g, -HPHI

    ok, fun, theta = _newton_search(fgh, _quadratic_in_phi, np.array([1.0, 1.0]))
    assert not ok and np.array_equal(theta, [1.0, 1.0]) and fun == _quadratic_in_phi([1.0, 1.0])
