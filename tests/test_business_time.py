"""Business time for customer requests (#28, monitor.sla.business), against hand-worked cases: a Friday evening
before a Vermont holiday weekend, the DST changes of March and November, a request paused while stalled, one
reopened after resolution, a 24x7 severity beside a business-hours one, and a Quebec holiday. Public holidays
from the maintained ``holidays`` package."""

from __future__ import annotations

from datetime import datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
import pytest

from monitor.sla.business import SupportCalendar, business_ms, deadline, windows

H = 3_600_000


def at(tz: str, *args) -> int:
    """A local wall time in ``tz`` as UTC ms (the wall time exists and is not ambiguous in these cases)."""
    return int(datetime(*args, tzinfo=ZoneInfo(tz)).timestamp() * 1000)


def utc(*args) -> int:
    return at("UTC", *args)


@lru_cache(maxsize=None)
def _holidays(country: str, subdiv: str | None, year: int) -> frozenset:
    return frozenset(holidays.country_holidays(country, subdiv=subdiv, years=year))


def calendar(tz="America/New_York", country="US", subdiv="VT", **kw) -> SupportCalendar:
    return SupportCalendar(tz, holidays=lambda year: _holidays(country, subdiv, year), **kw)


VT = calendar()


def test_a_friday_evening_before_a_vermont_holiday_weekend():
    """Friday 14 August 2026, 18:30 in Burlington: support closed at 18:00; Sunday the 16th is Bennington Battle
    Day (Vermont only), observed on Monday the 17th. The next support hour opens Tuesday 08:00 EDT, so a 4 h
    response target falls due Tuesday 12:00 EDT (16:00 UTC), 89.5 wall-clock hours later."""
    opened = at("America/New_York", 2026, 8, 14, 18, 30)
    assert datetime(2026, 8, 17).date() in _holidays("US", "VT", 2026)
    assert datetime(2026, 8, 17).date() not in _holidays("US", None, 2026)  # not a federal holiday
    due = deadline(VT, opened, 4 * H)
    assert due == utc(2026, 8, 18, 16, 0) and (due - opened) / H == 89.5
    assert business_ms(VT, opened, at("America/New_York", 2026, 8, 18, 10, 0)) == 2 * H
    # the same request under a 24x7 severity: due at 22:30 the same evening
    assert deadline(calendar(always=True), opened, 4 * H) == at("America/New_York", 2026, 8, 14, 22, 30)


@pytest.mark.parametrize("day, hours", [((2026, 3, 8), 2), ((2026, 11, 1), 4)])
def test_support_hours_across_the_dst_changes(day, hours):
    """Sunday support 01:00-04:00 local: on 8 March 2026 the clocks jump from 02:00 to 03:00 EDT, so the window is
    2 h long; on 1 November they fall back from 02:00 EDT to 01:00 EST, and the window from the first 01:00 to
    04:00 EST is 4 h long. A weekday 08:00-18:00 window beside them is 10 h either way."""
    cal = calendar(days=frozenset({7}), opens=time(1, 0), closes=time(4, 0))
    lo, hi = utc(*day) - 12 * H, utc(*day) + 36 * H
    assert business_ms(cal, lo, hi) == hours * H
    assert [(b - a) // H for a, b in windows(VT, utc(2026, 3, 9), utc(2026, 3, 10))] == [10]
    assert [(b - a) // H for a, b in windows(VT, utc(2026, 11, 2), utc(2026, 11, 3))] == [10]


def test_a_request_paused_while_stalled_and_one_reopened_after_resolution():
    """Monday 14 September 2026: opened 09:00, stalled (waiting on the customer) 10:00-14:00, answered 16:00:
    3 h of business time; a 4 h target with that pause falls due at 17:00. Another, resolved Tuesday 11:00 and
    reopened Wednesday 09:00, resolved again 10:30: its resolution time is 2 h + 1.5 h."""
    tz = "America/New_York"
    opened = at(tz, 2026, 9, 14, 9, 0)
    stalled = [(at(tz, 2026, 9, 14, 10, 0), at(tz, 2026, 9, 14, 14, 0))]
    assert business_ms(VT, opened, at(tz, 2026, 9, 14, 16, 0), stalled) == 3 * H
    assert deadline(VT, opened, 4 * H, stalled) == at(tz, 2026, 9, 14, 17, 0)
    first = at(tz, 2026, 9, 15, 9, 0)
    resolved, reopened, final = at(tz, 2026, 9, 15, 11, 0), at(tz, 2026, 9, 16, 9, 0), at(tz, 2026, 9, 16, 10, 30)
    assert business_ms(VT, first, final, [(resolved, reopened)]) == 3.5 * H


def test_a_quebec_holiday_and_a_calendar_without_support_hours():
    """Wednesday 24 June 2026 is the Fete nationale in Quebec (not an Ontario holiday): no support hours there."""
    qc = calendar("America/Toronto", "CA", "QC")
    on = calendar("America/Toronto", "CA", "ON")
    day = (at("America/Toronto", 2026, 6, 24, 0, 0), at("America/Toronto", 2026, 6, 25, 0, 0))
    assert business_ms(qc, *day) == 0 and business_ms(on, *day) == 10 * H
    assert deadline(calendar(days=frozenset()), utc(2026, 6, 1), H) is None  # never: no support hours at all
    assert deadline(VT, utc(2026, 6, 1), 0) == utc(2026, 6, 1)


BASE = {"contracts": [{"id": "c1", "customer": "A", "provider": "B", "timezone": "America/New_York",
                       "objectives": {"availability": "99.9%"}}], "targets": []}


def with_hours(hours: dict) -> dict:
    return {**BASE, "contracts": [{**BASE["contracts"][0], "support_hours": hours}]}


@pytest.mark.parametrize("hours, path, message", [
    ({"holidays": {"country": "XX"}}, "contracts[0].support_hours.holidays.country", "unknown holiday country 'XX'"),
    ({"holidays": {"country": "US", "subdiv": "ZZ"}}, "contracts[0].support_hours.holidays.subdiv",
     "US has no subdivision 'ZZ'"),
    ({"opens": "18:00", "closes": "08:00"}, "contracts[0].support_hours.closes", "closes 08:00 is not after opens 18:00"),
    ({"days": ["mon", "funday"]}, "contracts[0].support_hours.days[1]", "must be one of"),
])
def test_support_hours_config_errors_name_their_yaml_path(hours, path, message):
    from monitor.config import parse_config
    from monitor.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        parse_config(with_hours(hours))
    assert any(p.startswith(path + ":") and message in p for p in info.value.problems), info.value.problems


def test_a_contracts_support_hours_make_its_calendar():
    from monitor.config import parse_config
    from monitor.sla.business import calendar_for

    cfg = parse_config(with_hours({"days": ["mon", "tue", "wed", "thu", "fri"], "opens": "08:00", "closes": "18:00",
                                   "holidays": {"country": "US", "subdiv": "VT"}, "always": ["critical"]}))
    contract = cfg.contracts[0]
    opened = at("America/New_York", 2026, 8, 14, 18, 30)
    assert deadline(calendar_for(contract, "major"), opened, 4 * H) == utc(2026, 8, 18, 16, 0)  # as worked above
    assert deadline(calendar_for(contract, "critical"), opened, 4 * H) == opened + 4 * H  # 24x7
    assert calendar_for(parse_config(BASE).contracts[0], "minor").always  # no support hours: 24x7


def test_a_request_timeline_counts_only_staff_replies_and_pauses_until_now():
    from monitor.tickets.requests import timeline
    from monitor.tickets.requests.base import Event

    events = [Event(0, "create", "alice@x"), Event(10, "reply", "ALICE@x"), Event(20, "comment", "bob"),
              Event(30, "status", "bob", "stalled")]
    t = timeline("rt", "7", "1", "s", ("alice@x",), events, now_ms=100)
    assert t.first_response_ms is None and t.pauses == [(30, 100)] and t.status == "stalled"
    t = timeline("rt", "7", "1", "s", ("alice@x",), [*events, Event(40, "reply", "bob")], now_ms=100)
    assert t.first_response_ms == 40
