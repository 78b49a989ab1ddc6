"""How fast the midpoint rule for log Z converges on the 2-D targets (what unit 7, section 5 says).

The tapered U2-U4 have a jump in the second derivative at |x1| = 4, so the change of log Z
between n/2 and n falls by about 8 per doubling (O(n^-3)); the smooth mixture is at round-off
from the coarsest grid on.
"""

from __future__ import annotations

import pytest

from lftutor.toy2d.targets import get_target, log_z_grid


@pytest.mark.parametrize("name", ["U2", "U3", "U4"])
def test_tapered_targets_converge_as_n_to_the_minus_3(name):
    target = get_target(name)
    values = {n: log_z_grid(target, n=n) for n in (100, 200, 400, 1600)}
    first, second = abs(values[200] - values[100]), abs(values[400] - values[200])
    assert 6.5 < first / second < 9.5
    # what the unit says: at n = 400 the change from n = 200 is 7e-6, the error about 8e-7
    assert 5e-6 < second < 9e-6
    assert 5e-7 < abs(values[400] - values[1600]) < 1.2e-6


def test_the_mixture_is_at_round_off_at_once():
    target = get_target("mixture")
    assert abs(log_z_grid(target, n=25)) < 1e-11
    assert abs(log_z_grid(target, n=50) - log_z_grid(target, n=25)) < 1e-11


def test_the_cached_log_z_is_accurate_enough():
    """Target2D.log_z (n = 801) is within 2e-7 of a grid twice as fine for the slowest target."""
    target = get_target("U2")
    assert abs(target.log_z - log_z_grid(target, n=1602)) < 2e-7
