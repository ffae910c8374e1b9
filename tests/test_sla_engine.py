"""The SLA engine against hand-computed vectors (see ../shared/reference/sla-arithmetic.md)."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config.models import MaintenanceWindow
from monitor.sla.intervals import intersect, normalize, subtract, total, union
from monitor.sla.maintenance import expand_windows
from monitor.sla.periods import local_to_ms, month_of, month_period, months_overlapping
from monitor.sla.availability import availability, combine, month_to_date


def utc(*args) -> int:
    return int(datetime(*args, tzinfo=timezone.utc).timestamp() * 1000)


# --------------------------------------------------------------------------- calendar


@pytest.mark.parametrize(
    "year,month,tz,seconds",
    [
        (2026, 10, "UTC", 2_678_400),  # 31-day month
        (2026, 11, "UTC", 2_592_000),  # 30-day month
        (2026, 2, "UTC", 2_419_200),  # February, common year
        (2028, 2, "UTC", 2_505_600),  # February, leap year
        (2026, 3, "America/New_York", 2_678_400 - 3_600),  # DST starts
        (2026, 11, "America/New_York", 2_592_000 + 3_600),  # DST ends
        (2026, 10, "Europe/Berlin", 2_678_400 + 3_600),  # DST ends on Oct 25
        (2026, 7, "Asia/Kolkata", 2_678_400),  # +05:30, no DST
    ],
)
def test_true_month_lengths(year, month, tz, seconds):
    assert month_period(year, month, tz).seconds == seconds


def test_month_bounds_are_local_midnight():
    p = month_period(2026, 11, "America/New_York")
    assert p.start_ms == utc(2026, 11, 1, 4)  # 00:00 EDT
    assert p.end_ms == utc(2026, 12, 1, 5)  # 00:00 EST
    assert month_of(utc(2026, 11, 1, 3, 59, 59), "America/New_York").label == "2026-10"
    assert month_of(utc(2026, 11, 1, 4), "America/New_York").label == "2026-11"
    assert [m.label for m in months_overlapping(utc(2026, 10, 31), utc(2027, 1, 2), "UTC")] == ["2026-10", "2026-11", "2026-12", "2027-01"]


def test_nonexistent_local_time_maps_to_the_jump():
    # 2026-03-08 02:30 does not exist in New York (02:00 EST -> 03:00 EDT at 07:00 UTC)
    assert local_to_ms(datetime(2026, 3, 8, 2, 30), "America/New_York") == utc(2026, 3, 8, 7)
    # 2026-11-01 01:30 exists twice; the first (EDT) is taken
    assert local_to_ms(datetime(2026, 11, 1, 1, 30), "America/New_York") == utc(2026, 11, 1, 5, 30)


# --------------------------------------------------------------------------- intervals


def test_interval_arithmetic():
    a = normalize([(0, 10), (5, 20), (30, 40), (40, 45)])
    assert a == [(0, 20), (30, 45)]
    assert subtract(a, [(5, 8), (35, 50)]) == [(0, 5), (8, 20), (30, 35)]
    assert intersect(a, [(15, 32)]) == [(15, 20), (30, 32)]
    assert union([(0, 1)], [(1, 2)]) == [(0, 2)]
    assert total(a) == 35


# --------------------------------------------------------------------------- availability vectors


def test_31_day_month_with_a_43_minute_outage():
    p = month_period(2026, 10, "UTC")
    a = availability((p.start_ms, p.end_ms), [(utc(2026, 10, 14, 9), utc(2026, 10, 14, 9, 43))], [], [])
    assert a.period_ms == 2_678_400_000 and a.downtime_ms == 2_580_000 and a.excluded_ms == 0
    assert a.ratio == Fraction(2_678_400 - 2_580, 2_678_400)
    assert a.percent() == Decimal("99.903674")
    assert a.met(Decimal("99.9")) is True  # 43 min < 44 min 38.4 s allowed in a 31-day month
    assert a.met(Decimal("99.95")) is False


def test_outage_across_a_month_boundary_in_new_york():
    tz = "America/New_York"
    # 2026-10-31 23:30 EDT .. 2026-11-01 00:45 EDT
    outage = [(local_to_ms(datetime(2026, 10, 31, 23, 30), tz), local_to_ms(datetime(2026, 11, 1, 0, 45), tz))]
    october, november = month_period(2026, 10, tz), month_period(2026, 11, tz)
    a_oct = availability((october.start_ms, october.end_ms), outage, [], [])
    a_nov = availability((november.start_ms, november.end_ms), outage, [], [])
    assert a_oct.downtime_ms == 30 * 60_000 and a_nov.downtime_ms == 45 * 60_000
    assert a_oct.ratio == Fraction(2_678_400 - 1_800, 2_678_400)
    assert a_nov.ratio == Fraction(2_595_600 - 2_700, 2_595_600)  # November has 30 days + 1 hour there


def test_dst_month_uses_its_true_length():
    tz = "America/New_York"
    march = month_period(2026, 3, tz)
    a = availability((march.start_ms, march.end_ms), [(march.start_ms, march.start_ms + 2_674_800)], [], [])
    assert a.period_ms == 2_674_800_000
    assert a.downtime_ms == 2_674_800  # 2674.8 s
    assert a.ratio == Fraction(999, 1000)


def test_maintenance_overlapping_an_outage_is_split():
    p = month_period(2026, 11, "UTC")
    maintenance = [(utc(2026, 11, 8, 2), utc(2026, 11, 8, 4))]
    outage = [(utc(2026, 11, 8, 3), utc(2026, 11, 8, 5))]
    a = availability((p.start_ms, p.end_ms), outage, [], maintenance)
    assert a.maintenance_ms == 7_200_000 and a.downtime_ms == 3_600_000
    assert a.downtime == ((utc(2026, 11, 8, 4), utc(2026, 11, 8, 5)),)
    assert a.ratio == Fraction(2_592_000 - 7_200 - 3_600, 2_592_000 - 7_200)


def test_unknown_time_under_both_policies():
    p = month_period(2026, 11, "UTC")
    unknown = [(utc(2026, 11, 10, 10), utc(2026, 11, 10, 11))]
    outage = [(utc(2026, 11, 10, 10, 30), utc(2026, 11, 10, 12))]  # half inside the unknown hour
    excl = availability((p.start_ms, p.end_ms), outage, unknown, [], "exclude")
    down = availability((p.start_ms, p.end_ms), outage, unknown, [], "downtime")
    assert (excl.unknown_ms, excl.excluded_ms, excl.downtime_ms) == (3_600_000, 3_600_000, 3_600_000)
    assert excl.ratio == Fraction(2_592_000 - 3_600 - 3_600, 2_592_000 - 3_600)
    assert (down.unknown_ms, down.excluded_ms, down.downtime_ms) == (3_600_000, 0, 7_200_000)
    assert down.ratio == Fraction(2_592_000 - 7_200, 2_592_000)


def test_whole_period_in_maintenance_has_no_availability():
    p = month_period(2026, 11, "UTC")
    a = availability((p.start_ms, p.end_ms), [], [], [(p.start_ms, p.end_ms)])
    assert a.ratio is None and a.met(Decimal("99.9")) is None


# --------------------------------------------------------------------------- maintenance windows


def window(**kw) -> MaintenanceWindow:
    return MaintenanceWindow(name="w", **kw)


def test_weekly_window_across_the_dst_change_in_berlin():
    p = month_period(2026, 10, "Europe/Berlin")
    got = expand_windows([window(weekly={"days": ["sun"], "at": "02:00"}, duration=7200)], "Europe/Berlin", p.start_ms, p.end_ms)
    # Sundays 4, 11, 18 at 02:00 CEST = 00:00 UTC; the 25th at the first 02:00 (CEST) = 00:00 UTC
    assert got == [(utc(2026, 10, d, 0), utc(2026, 10, d, 2)) for d in (4, 11, 18, 25)]


def test_monthly_window_on_a_missing_day_falls_on_the_last_day():
    p = month_period(2026, 11, "UTC")
    got = expand_windows([window(monthly={"day": 31, "at": "03:00"}, duration=3600)], "UTC", p.start_ms, p.end_ms)
    assert got == [(utc(2026, 11, 30, 3), utc(2026, 11, 30, 4))]


def test_cron_and_one_off_windows():
    p = month_period(2026, 11, "UTC")
    got = expand_windows(
        [window(cron="30 4 * * sat", duration=900), window(start=datetime(2026, 11, 30, 23), duration=7200)],
        "UTC", p.start_ms, p.end_ms,
    )
    saturdays = [7, 14, 21, 28]
    assert got[:4] == [(utc(2026, 11, d, 4, 30), utc(2026, 11, d, 4, 45)) for d in saturdays]
    assert got[4] == (utc(2026, 11, 30, 23), p.end_ms)  # clipped at the month end


def calendar_config(contract_windows, target_windows=()):
    from monitor.config import parse_config

    return parse_config({
        "contracts": [{"id": "c", "customer": "A", "provider": "B", "timezone": "Europe/Berlin",
                       "objectives": {"availability": "99.9%"}, "maintenance": list(contract_windows)},
                      {"id": "plain", "customer": "A", "provider": "B", "objectives": {"availability": "99.9%"}}],
        "targets": [{"id": "t1", "contract": "c", "kind": "internet", "address": "127.0.0.1"},
                    {"id": "t2", "contract": "c", "kind": "internet", "address": "127.0.0.2",
                     "maintenance": list(target_windows)},
                    {"id": "t3", "contract": "plain", "kind": "internet", "address": "127.0.0.3"}]})


def test_the_maintenance_calendar_equals_expanding_the_span_and_expands_each_month_once(monkeypatch):
    """The shared calendar (ingestion, evaluator, monthly figures): across months and the DST change, a window
    over a month boundary is one interval; each month of the contract (and of a target with its own windows) is
    expanded once however often it is asked; the instant lookup ingestion uses agrees with the intervals."""
    import monitor.sla.maintenance as maintenance

    contract_windows = [{"name": "weekly", "weekly": {"days": ["sun"], "at": "02:00"}, "duration": "2h"},
                        {"name": "month-end", "start": "2026-11-30T23:00:00", "duration": "3h"},
                        {"name": "cron", "cron": "30 4 * * sat", "duration": "15m"}]
    config = calendar_config(contract_windows, [{"name": "own", "monthly": {"day": 15, "at": "12:00"},
                                                 "duration": "1h"}])
    t1, t2, t3 = config.targets
    contract = config.contracts[0]
    lo, hi = month_period(2026, 10, "Europe/Berlin").start_ms + 86_400_000, month_period(2026, 12, "Europe/Berlin").end_ms
    calls = []
    real = maintenance.expand_windows
    monkeypatch.setattr(maintenance, "expand_windows", lambda *a: calls.append(a[2]) or real(*a))
    calendar = maintenance.MaintenanceCalendar(config)
    got = calendar.intervals(t1, lo, hi)
    assert got == real(contract.maintenance, "Europe/Berlin", lo, hi)
    assert (utc(2026, 11, 30, 22), utc(2026, 12, 1, 1)) in got  # 23:00 CET on the 30th for 3 h: one interval
    assert calendar.intervals(t2, lo, hi) == real([*contract.maintenance, *t2.maintenance], "Europe/Berlin", lo, hi)
    assert len(calls) == 6  # October, November, December: once for the contract, once for t2
    for _ in range(3):
        calendar.intervals(t1, lo, hi)
        calendar.intervals(t2, lo + 5, hi - 5)
    assert len(calls) == 6
    # the instant lookup gives the window as far as its month reaches (the rollups keep it that way)
    assert calendar.window_at(t1, utc(2026, 11, 30, 22, 30)) == (utc(2026, 11, 30, 22), utc(2026, 11, 30, 23))
    assert calendar.window_at(t1, utc(2026, 11, 30, 23, 30)) == (utc(2026, 11, 30, 23), utc(2026, 12, 1, 1))
    assert calendar.window_at(t1, utc(2026, 11, 7, 3, 40)) == (utc(2026, 11, 7, 3, 30), utc(2026, 11, 7, 3, 45))
    assert calendar.window_at(t1, utc(2026, 11, 7, 3, 45)) is None  # half open
    assert calendar.window_at(t2, utc(2026, 11, 15, 11, 30)) == (utc(2026, 11, 15, 11), utc(2026, 11, 15, 12))
    assert calendar.window_at(t1, utc(2026, 11, 15, 11, 30)) is None  # t2's own window is not t1's
    assert calendar.intervals(t3, lo, hi) == [] and calendar.window_at(t3, lo) is None
    assert len(calls) == 6


# --------------------------------------------------------------------------- month to date


def test_month_to_date_budget_and_projection():
    p = month_period(2026, 11, "UTC")
    now = utc(2026, 11, 11)  # 10 days in
    old_outage = [(utc(2026, 11, 5), utc(2026, 11, 5) + 1_296_000)]  # 1296 s, long ago
    m = month_to_date((p.start_ms, p.end_ms), now, old_outage, [], [], Decimal("99.9"))
    assert m.budget_ms == 2_592_000 and m.used_ms == 1_296_000 and m.remaining_ms == 1_296_000
    assert m.remaining_ratio == 0.5 and m.burn_rate_1h == 0.0
    assert m.projected_ratio == pytest.approx(1 - 1296 / 2_592_000)
    assert not m.at_risk and not m.breached

    recent_outage = [(now - 1_296_000, now)]  # the same downtime, in the last 24 h
    m = month_to_date((p.start_ms, p.end_ms), now, recent_outage, [], [], Decimal("99.9"))
    # recent error ratio 1296/86400 = 1.5 %, over the 20 days left: 25,920 s more
    assert m.projected_ratio == pytest.approx(1 - (1296 + 25_920) / 2_592_000)
    assert m.at_risk and not m.breached
    assert m.burn_rate_1h == pytest.approx(360.0)  # 1296 s of the last 3600 s down = 36 %, over a 0.1 % budget


def test_month_to_date_excludes_future_maintenance_from_the_budget():
    p = month_period(2026, 11, "UTC")
    future = [(utc(2026, 11, 20), utc(2026, 11, 20) + 7_200_000)]
    m = month_to_date((p.start_ms, p.end_ms), utc(2026, 11, 11), [], [], future, Decimal("99.9"))
    assert m.budget_ms == int(Fraction(1, 1000) * (2_592_000_000 - 7_200_000))


def test_budget_spent_is_breached():
    p = month_period(2026, 11, "UTC")
    m = month_to_date((p.start_ms, p.end_ms), utc(2026, 11, 3), [(utc(2026, 11, 2), utc(2026, 11, 2, 1))], [], [], Decimal("99.9"))
    assert m.breached and m.remaining_ms == 2_592_000 - 3_600_000


# --------------------------------------------------------------------------- partition property

ms_points = st.integers(min_value=0, max_value=10_000_000)
spans = st.lists(st.tuples(ms_points, st.integers(min_value=1, max_value=2_000_000)).map(lambda t: (t[0], t[0] + t[1])), max_size=8)


@settings(max_examples=300, deadline=None)
@given(down=spans, unknown=spans, maintenance=spans, cuts=st.lists(ms_points, max_size=6),
       policy=st.sampled_from(["exclude", "downtime"]))
def test_availability_over_any_partition_equals_the_whole(down, unknown, maintenance, cuts, policy):
    lo, hi = 0, 10_000_000
    bounds = sorted({lo, hi, *cuts})
    whole = availability((lo, hi), down, unknown, maintenance, policy)
    parts = [availability((a, b), down, unknown, maintenance, policy) for a, b in zip(bounds, bounds[1:])]
    eligible, downtime = combine(parts)
    assert (eligible, downtime) == (whole.eligible_ms, whole.downtime_ms)
    assert sum(p.maintenance_ms for p in parts) == whole.maintenance_ms
    if eligible:
        assert Fraction(eligible - downtime, eligible) == whole.ratio
