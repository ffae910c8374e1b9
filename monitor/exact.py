"""Figures against objectives, compared exactly: the one definition of "met".

A measured figure meets an upper objective (loss, latency, jitter, one-way delay, response time) when it is at
most the objective, and a lower one (MOS, certificate days left) when it is at least the objective: a figure
exactly at the objective meets it. Both sides are exact fractions, never binary floats, so 7 lost of 1,000 meets
``loss: 0.7%``. The per-cycle judgement (:func:`probes.base.judge`), the voice samples, the monthly figures and
the credits all compare through these functions.

May import: nothing of slawatch (the bottom layer: probes and the SLA core both use it).
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

__all__ = ["exact", "at_most", "at_least", "Number", "percent_ratio"]

Number = int | float | Decimal | Fraction


def exact(x: Number) -> Fraction:
    """A figure as an exact fraction, for comparison with an objective. A binary float is read as the shortest
    decimal that gives it back (``0.7000000000000001`` stays itself, ``0.15`` is 3/20): that is the number the
    config or the measurement wrote; decimals, fractions and integers are taken as they are."""
    if isinstance(x, float):
        return Fraction(repr(x))
    return Fraction(x)


def _cmp(value: Number, limit: Number) -> int:
    if isinstance(value, float) and not math.isfinite(value) or isinstance(limit, float) and not math.isfinite(limit):
        return (float(value) > float(limit)) - (float(value) < float(limit))
    a, b = exact(value), exact(limit)
    return (a > b) - (a < b)


def at_most(value: Number, limit: Number) -> bool:
    """The one definition of meeting an upper objective (loss, latency, jitter, delay, response time): a figure
    exactly at the objective meets it; compared exactly, never in binary floats."""
    return _cmp(value, limit) <= 0


def at_least(value: Number, limit: Number) -> bool:
    """The one definition of meeting a lower objective (MOS, certificate days left): at the objective is met."""
    return _cmp(value, limit) >= 0


def percent_ratio(pct: Number) -> float:
    """An objective in percent as the ratio the metrics show, divided exactly before it becomes a float
    (``99.9`` -> 0.999, where ``float(99.9) / 100`` is 0.9990000000000001). The one conversion: the evaluator's
    SLA figures and the exported objective thresholds both use it."""
    return float(exact(pct) / 100)
