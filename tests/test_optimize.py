"""The optimiser's fallback path: Powell and Nelder–Mead restarts when the gradient check fails."""

from __future__ import annotations

import numpy as np

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
