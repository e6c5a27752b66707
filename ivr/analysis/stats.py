"""The statistics behind hotspots (critical points): a one-sided Poisson test and Benjamini-Hochberg.

No SciPy: the upper tail of a Poisson distribution is summed directly from its first
term, which stays accurate for the tiny p-values that matter here.
"""
from __future__ import annotations

import math
from collections.abc import Sequence


def poisson_sf(observed: int, mean: float) -> float:
    """P(X >= observed) for X ~ Poisson(mean): the chance of a count at least this high."""
    if observed <= 0:
        return 1.0
    if mean <= 0:
        return 0.0
    if observed <= mean:
        # The tail holds most of the mass: 1 - P(X < observed), summed over few terms.
        term = math.exp(-mean)
        below = term
        for k in range(1, observed):
            term *= mean / k
            below += term
        return max(0.0, min(1.0, 1.0 - below))
    log_term = observed * math.log(mean) - mean - math.lgamma(observed + 1)
    term = math.exp(log_term)
    total = term
    k = observed
    while term > total * 1e-16:
        k += 1
        term *= mean / k
        total += term
    return min(1.0, total)


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Adjusted p-values (q-values) controlling the false discovery rate over all tests."""
    n = len(p_values)
    order = sorted(range(n), key=lambda i: p_values[i])
    adjusted = [1.0] * n
    smallest = 1.0
    for rank in range(n, 0, -1):
        i = order[rank - 1]
        smallest = min(smallest, p_values[i] * n / rank)
        adjusted[i] = min(1.0, smallest)
    return adjusted
