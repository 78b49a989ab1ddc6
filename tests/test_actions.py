"""Actions against independent computations: explicit site loops, quadratic forms, determinants."""

import itertools
import math

import numpy as np
import pytest
import torch

from lftutor import FreeFieldAction, ScalarPhi4Action
from lftutor.lattice.actions import laplacian_matrix


def phi4_by_loops(phi: np.ndarray, m2: float, lam: float) -> float:
    """The phi^4 action of one configuration by an explicit loop over sites and directions."""
    shape = phi.shape
    total = 0.0
    for x in itertools.product(*[range(n) for n in shape]):
        kinetic = 0.0
        for mu in range(len(shape)):
            up = list(x)
            up[mu] = (up[mu] + 1) % shape[mu]
            dn = list(x)
            dn[mu] = (dn[mu] - 1) % shape[mu]
            kinetic += 2 * phi[x] - phi[tuple(up)] - phi[tuple(dn)]
        total += phi[x] * kinetic + m2 * phi[x] ** 2 + lam * phi[x] ** 4
    return total


@pytest.mark.parametrize("shape", [(3, 3), (4, 4), (2, 5), (3, 3, 2), (5,)])
@pytest.mark.parametrize("m2,lam", [(-4.0, 8.0), (0.5, 0.0), (1.0, 2.5)])
def test_phi4_action_against_site_loop(shape, m2, lam):
    phi = torch.randn(3, *shape, dtype=torch.float64)
    got = ScalarPhi4Action(m2, lam)(phi)
    expected = [phi4_by_loops(p.numpy(), m2, lam) for p in phi]
    assert got.shape == (3,)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


def test_phi4_action_of_constant_field_by_hand():
    # Constant field: the kinetic term vanishes, S = V (m2 c^2 + lam c^4).
    c, m2, lam = 0.7, -4.0, 8.0
    phi = torch.full((1, 3, 3), c, dtype=torch.float64)
    expected = 9 * (m2 * c**2 + lam * c**4)
    assert ScalarPhi4Action(m2, lam)(phi).item() == pytest.approx(expected, rel=1e-12)


def test_phi4_action_works_in_float32():
    phi = torch.randn(4, 8, 8)
    assert ScalarPhi4Action(-4, 8)(phi).dtype == torch.float32


def test_laplacian_is_symmetric_with_zero_mode():
    lap = laplacian_matrix((4, 3))
    torch.testing.assert_close(lap, lap.T)
    torch.testing.assert_close(lap.sum(dim=1), torch.zeros(12, dtype=torch.float64))
    assert torch.diagonal(lap).eq(-4).all()


@pytest.mark.parametrize("shape", [(3, 3), (4, 4), (6,)])
def test_free_field_action_is_half_quadratic_form_with_laplacian(shape):
    m2 = 0.25
    gff = FreeFieldAction(m2, shape)
    n = math.prod(shape)
    # Independent: build -Delta from explicit neighbour pairs, not from laplacian_matrix.
    k = np.eye(n) * (2 * len(shape) + m2)
    for x in itertools.product(*[range(s) for s in shape]):
        i = np.ravel_multi_index(x, shape)
        for mu in range(len(shape)):
            for step in (1, -1):
                y = list(x)
                y[mu] = (y[mu] + step) % shape[mu]
                k[i, np.ravel_multi_index(tuple(y), shape)] -= 1
    phi = torch.randn(4, *shape, dtype=torch.float64)
    flat = phi.reshape(4, n).numpy()
    expected = 0.5 * np.einsum("bi,ij,bj->b", flat, k, flat)
    np.testing.assert_allclose(gff(phi).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(gff.precision.numpy(), k, atol=1e-14)


def test_free_field_at_lam_zero_is_half_the_phi4_action_at_half_mass():
    # S_phi4(m2, 0) = phi^T(-Delta + m2)phi = 2 * S_free(m2)
    phi = torch.randn(3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(ScalarPhi4Action(0.3, 0.0)(phi), 2 * FreeFieldAction(0.3, (4, 4))(phi))


def test_free_field_log_z_against_determinant_and_eigenvalues():
    shape, m2 = (4, 4), 0.25
    gff = FreeFieldAction(m2, shape)
    n = 16
    # Eigenvalues of -Delta on the periodic lattice are sum_mu 4 sin^2(pi k_mu / L).
    eig = [m2 + sum(4 * math.sin(math.pi * k / L) ** 2 for k, L in zip(ks, shape, strict=False))
           for ks in itertools.product(*[range(L) for L in shape])]
    expected = 0.5 * n * math.log(2 * math.pi) - 0.5 * sum(math.log(e) for e in eig)
    assert gff.log_z == pytest.approx(expected, rel=1e-12)
    torch.testing.assert_close(gff.covariance @ gff.precision, torch.eye(n, dtype=torch.float64))
    torch.testing.assert_close(gff.cholesky @ gff.cholesky.T, gff.covariance)


def test_free_field_log_z_by_monte_carlo_on_tiny_lattice():
    # Z = E_{N(0,1)}[exp(-S(x)) / r(x)] on a 2-site lattice, where this is well conditioned.
    gff = FreeFieldAction(1.0, (2,))
    x = torch.randn(400_000, 2, dtype=torch.float64)
    log_r = -0.5 * (x**2).sum(1) - math.log(2 * math.pi)
    log_w = -gff(x) - log_r
    mc = (torch.logsumexp(log_w, 0) - math.log(x.shape[0])).item()
    assert mc == pytest.approx(gff.log_z, abs=0.01)


def test_free_field_samples_have_the_exact_covariance():
    gff = FreeFieldAction(0.5, (4,))
    phi = gff.sample_n(200_000)
    emp = torch.cov(phi.T)
    torch.testing.assert_close(emp, gff.covariance, atol=0.02, rtol=0)
