from decimal import Decimal

import pytest

from monitor.units import format_duration, parse_duration, parse_percent


@pytest.mark.parametrize(
    "text,seconds",
    [("30s", 30), ("250ms", 0.25), ("2h", 7200), ("1h30m", 5400), ("14d", 1209600), ("1w", 604800), (5, 5), ("0s", 0)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["often", "30", "30 seconds", "-5s", "", True, None, "1y"])
def test_bad_durations(bad):
    with pytest.raises(ValueError, match="must be a duration like 30s"):
        parse_duration(bad)


def test_percent_is_exact_decimal():
    assert parse_percent("99.9%") == Decimal("99.9")
    assert parse_percent(99.95) == Decimal("99.95")
    assert parse_percent("100") == Decimal("100")
    for bad in ("101%", "-1", "abc", "nan"):
        with pytest.raises(ValueError):
            parse_percent(bad)


def test_format_duration():
    assert format_duration(3723) == "1h2m3s"
    assert format_duration(0.25) == "250ms"
    assert format_duration(0) == "0s"
    assert format_duration(86400 * 2 + 60) == "2d1m"
