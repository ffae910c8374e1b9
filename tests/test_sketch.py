"""Quantile sketch accuracy on skewed, heavy-tailed data, merging and encoding."""

import random

import pytest

from monitor.sla.sketch import RELATIVE_ACCURACY, RttSketch


def heavy_tailed(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if rng.random() < 0.97:
            out.append(rng.lognormvariate(-3.9, 0.35))  # ~20 ms body, right-skewed
        else:
            out.append(0.02 * rng.paretovariate(1.2))  # Pareto tail up to seconds
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_relative_error_within_one_percent(seed):
    data = heavy_tailed(100_000, seed)
    sketch = RttSketch()
    for x in data:
        sketch.add(x)
    exact = sorted(data)
    for q in (0.5, 0.9, 0.95, 0.99, 0.999):
        truth = exact[int(q * (len(exact) - 1))]
        got = sketch.quantile(q)
        assert abs(got - truth) / truth <= 0.01, (q, got, truth)
        assert abs(got - truth) / truth <= RELATIVE_ACCURACY * 1.0001
    assert sketch.quantile(0) == exact[0] and sketch.quantile(1) == exact[-1]


def test_hourly_sketches_merge_into_the_month():
    data = heavy_tailed(72_000, 7)
    whole, merged = RttSketch(), RttSketch()
    for x in data:
        whole.add(x)
    for hour in range(720):
        part = RttSketch()
        for x in data[hour * 100:(hour + 1) * 100]:
            part.add(x)
        merged.merge(RttSketch.from_bytes(part.to_bytes()))
    assert merged.bins == whole.bins and merged.count == whole.count
    assert merged.quantile(0.95) == whole.quantile(0.95)
    assert merged.sum == pytest.approx(whole.sum)


def test_encoding_is_compact_and_exact():
    sketch = RttSketch()
    for x in heavy_tailed(360, 3):  # an hour of 30 s cycles x 3 echoes
        sketch.add(x)
    blob = sketch.to_bytes()
    back = RttSketch.from_bytes(blob)
    assert back.bins == sketch.bins and back.min == sketch.min and back.max == sketch.max
    assert len(blob) < 400
    assert RttSketch.from_bytes(RttSketch().to_bytes()).quantile(0.5) is None


def test_dense_store_grows_both_ways_and_stays_small():
    """The counts are a dense array from the lowest bucket seen: values arriving high first, then lower, land
    in the right buckets (the array is re-based), and a month-like spread costs a few KB, not one object per
    bucket."""
    import sys

    sketch, reference = RttSketch(), []
    for x in [0.5, 0.02, 0.0001, 0.3, 0.00005, 0.02, 1.5]:
        sketch.add(x)
        reference.append(x)
    assert sketch.count == 7 and sum(sketch.bins.values()) == 7
    assert sketch.quantile(0) == 0.00005 and sketch.quantile(1) == 1.5
    assert abs(sketch.quantile(0.5) - 0.02) / 0.02 <= RELATIVE_ACCURACY * 1.0001
    back = RttSketch.from_bytes(sketch.to_bytes())
    assert back.bins == sketch.bins
    wide = RttSketch()
    for x in heavy_tailed(50_000, 5):
        wide.add(x)
    assert sys.getsizeof(wide._counts) < 8 * 1024  # a dict of its buckets was ~5x that


def test_counts_widen_from_one_byte_as_buckets_fill_without_losing_any():
    """An hour of a target's echoes fits 1-byte counts; a bucket past 255 widens them to 2 bytes, past 65,535 to 4;
    a merged contract-wide month can pass 2**32 - 1 in one bucket, and then the counts become 8 bytes."""
    one = RttSketch()
    for i in range(255):
        one.add(0.001 + i * 1e-9)  # one bucket
    one.add(0.002)
    assert one._counts.itemsize == 1 and max(one._counts) == 255
    one.add(0.001)
    assert one._counts.itemsize == 2 and sorted(n for _, n in one.items()) == [1, 256]
    one.merge(RttSketch.from_bytes(_scaled(one, 70_000)))
    assert one._counts.itemsize == 4 and sorted(n for _, n in one.items()) == [70_001, 70_256]
    assert one.count == 257 + 2 * 70_000 and one.quantile(0.5) == pytest.approx(0.001, rel=0.02)
    direct = RttSketch()
    direct.add(0.003)
    direct._bump(0, 2**40)  # one bump past three widths at once
    assert direct._counts.typecode == "Q" and direct._counts[0] == 2**40 + 1
    one = RttSketch()
    one.add(0.001)
    assert one._counts.itemsize == 1
    big = RttSketch.from_bytes(one.to_bytes())
    for _ in range(3):
        big.merge(RttSketch.from_bytes(_scaled(one, 2**31)))
    assert big.count == 1 + 3 * 2**31 and big._counts.typecode == "Q"
    assert big.quantile(0.5) == pytest.approx(0.001, rel=0.02)


def _scaled(sketch, n):
    s = RttSketch()
    for key, _count in sketch.items():
        s._bump(s._slot(key), n)
        s.count += n
    s.min, s.max, s.sum = sketch.min, sketch.max, sketch.sum * n
    return s.to_bytes()
