"""Small statistics shared by training (in-training probe) and evaluation (encoder metrics)."""
from __future__ import annotations

import math

import numpy as np


def pearson(x, y) -> float:
    """Pearson correlation; 0.0 with fewer than two rows or without variance in either input
    (nothing to correlate, and a NaN would poison best-checkpoint comparisons)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size < 2:
        return 0.0
    dx, dy = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float((dx * dx).sum()) * float((dy * dy).sum()))
    return float((dx * dy).sum() / denominator) if denominator > 0 else 0.0
