"""What the portal's pages show of one contract, from the store: the circuits now, the month to date, the
outages with their evidence, the maintenance to come, the contract's tickets and customer requests, and the
months whose reports can be downloaded. Read-only; every figure from the same code as the CLI and the report."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["overview", "outages", "outage", "months", "local"]


def local(ts: float | None, tz: str) -> str:
    """An instant in the contract's zone, the zone named (``2026-12-07 14:03:05 CET``)."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S %Z")


def _month_start(contract: Any, now: float) -> float:
    from monitor.sla.periods import month_of, to_ms

    return month_of(to_ms(now), contract.timezone).start_ms / 1000


def overview(config: Any, store: Any, contract: Any, now: float | None = None) -> dict[str, Any]:
    """The contract's page: circuits (state, since, month to date against the objective, budget left), the
    month's outages, maintenance in the next 30 days, open tickets, and this month's customer requests."""
    from monitor.reports.status import circuit_rows
    from monitor.sla.maintenance import expand_windows

    now = time.time() if now is None else now
    objective = float(contract.objectives.availability) / 100
    circuits = []
    for row in circuit_rows(config, store, now, contract.id):
        mtd = row["month_availability"]
        circuits.append({**row, "since_local": local(row["since"], contract.timezone),
                         "met": None if mtd is None else mtd >= objective})
    start = _month_start(contract, now)
    lo_ms, hi_ms = int(now * 1000), int((now + 30 * 86400) * 1000)
    windows = [(lo, hi, "all circuits") for lo, hi in expand_windows(contract.maintenance, contract.timezone, lo_ms,
                                                                     hi_ms)]
    for t in config.targets:  # a circuit's own windows
        if t.contract == contract.id and t.maintenance:
            windows += [(lo, hi, t.id) for lo, hi in expand_windows(t.maintenance, contract.timezone, lo_ms, hi_ms)]
    upcoming = [(local(lo / 1000, contract.timezone), local(hi / 1000, contract.timezone), what)
                for lo, hi, what in sorted(windows)][:30]
    from monitor.tickets.ledger import REQUEST_KIND, response_times

    tickets = [{"ticket": t, **response_times(t, contract)} for t in store.tickets(contract=contract.id, since=start)
               if t.parent_id is None and t.kind != REQUEST_KIND]
    requests = request_times(contract, store.requests(contract=contract.id, start=start),
                             store.request_sources_checked(), now)
    return {"circuits": circuits, "objective_pct": str(contract.objectives.availability),
            "outages": outages(store, contract, start, now, config), "maintenance": upcoming,
            "tickets": tickets, "requests": requests, "now": local(now, contract.timezone)}


def outages(store: Any, contract: Any, start: float, end: float, config: Any = None) -> list[dict[str, Any]]:
    """The contract's outages overlapping [start, end), newest first, with their cause, sites and (given the
    ``config``) the maintenance they overlapped (that time is not downtime)."""
    from monitor.sla.intervals import total
    from monitor.sla.maintenance import MaintenanceCalendar

    calendar = MaintenanceCalendar(config) if config is not None else None
    targets = {t.id: t for t in config.targets} if config is not None else {}
    out = []
    for o in store.outages_between(start, end, contract.id):
        if o.contract != contract.id or o.kind != "down":
            continue
        ev = o.evidence or {}
        first_bad = ev.get("first_bad") or {}
        target, _, site = o.target.partition("@")
        out.append({"target": target, "site": site or None, "start": o.start, "end": o.end,
                    "start_local": local(o.start, contract.timezone),
                    "end_local": "ongoing" if o.end is None else local(o.end, contract.timezone),
                    "duration_s": (o.end or end) - o.start, "cause": first_bad.get("reason") or first_bad.get("cause"),
                    "key": f"{o.target}/{int(o.start * 1000)}", "maintenance_s": None})
        if calendar is not None and target in targets:
            windows = calendar.intervals(targets[target], int(o.start * 1000), int((o.end or end) * 1000))
            out[-1]["maintenance_s"] = total(windows) / 1000
    return sorted(out, key=lambda o: -o["start"])


def outage(store: Any, contract: Any, unit: str, start_ms: int) -> dict[str, Any] | None:
    """One outage of the contract with its probe evidence (None: no such outage of this contract)."""
    for o in store.outages(unit):
        if o.contract == contract.id and o.kind == "down" and int(o.start * 1000) == start_ms:
            return {"target": unit, "start_local": local(o.start, contract.timezone),
                    "end_local": "ongoing" if o.end is None else local(o.end, contract.timezone),
                    "duration_s": (o.end or time.time()) - o.start, "evidence": o.evidence or {}}
    return None


def months(contract: Any, now: float, count: int = 12) -> list[str]:
    """The months whose reports can be downloaded: this one (to date) and the ``count`` - 1 before it."""
    local_now = datetime.fromtimestamp(now, ZoneInfo(contract.timezone))
    y, m = local_now.year, local_now.month
    out = []
    for _ in range(count):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return out


def circuit(config: Any, store: Any, contract: Any, target_id: str, now: float | None = None) -> dict[str, Any] | None:
    """A circuit's month to date: its report figures (every objective, measured, met or missed), its days as a
    server-side SVG chart and a table, and its outages of the last twelve months (None: not this contract's)."""
    from monitor.reports.report import build_report

    now = time.time() if now is None else now
    if not any(t.id == target_id and t.contract == contract.id for t in config.targets):
        return None
    month = months(contract, now, 1)[0]
    # the report of this one circuit (its figures are its own; the contract's credit is not shown here)
    one = config.model_copy(update={"targets": [t for t in config.targets if t.id == target_id]})
    report = build_report(store, one, month, now=now, contract_id=contract.id)
    target = next(t for c in report.contracts for t in c.targets if t.id == target_id)
    objective = float(contract.objectives.availability) / 100
    days = [{"date": d.date, "ratio": None if d.ratio is None else float(d.ratio), "downtime_s": d.downtime_s,
             "met": None if d.ratio is None else float(d.ratio) >= objective} for d in target.daily]
    return {"target": target, "days": days, "svg": day_chart(days, objective, target_id),
            "outages": [o for o in outages(store, contract, now - 366 * 86400, now, config)
                        if o["target"] == target_id],
            "month": month}


def day_chart(days: list[dict[str, Any]], objective: float, name: str) -> str:
    """Each day's availability as bars (red below the objective, green at or above it; grey without a figure),
    the objective as a dashed line; an SVG made here, no script."""
    from html import escape

    width, height, pad = 24 * max(len(days), 1) + 60, 220, 40
    floor = min([objective - (1 - objective) * 4] + [d["ratio"] for d in days if d["ratio"] is not None])
    floor = max(0.0, min(floor, objective - 0.0005))

    def y(ratio: float) -> float:
        return pad + (height - 2 * pad) * (1 - (ratio - floor) / (1 - floor))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" aria-labelledby="chart-title">',
             f'<title id="chart-title">Daily availability of {escape(name)} against {objective * 100:g} %</title>',
             f'<text x="4" y="{y(1.0) + 4:.1f}" font-size="10">100 %</text>',
             f'<text x="4" y="{y(floor) + 4:.1f}" font-size="10">{floor * 100:.2f} %</text>']
    for i, d in enumerate(days):
        x = 50 + 24 * i
        parts.append(f'<text x="{x + 9}" y="{height - pad + 14}" font-size="9" text-anchor="middle">'
                     f'{d["date"][-2:]}</text>')
        if d["ratio"] is None:  # a day to come or without evidence: a stub at the floor, never a full bar
            parts.append(f'<rect x="{x}" y="{y(floor) - 3:.1f}" width="18" height="3" fill="#d0d4d9">'
                         f'<title>{d["date"]}: no figure</title></rect>')
            continue
        colour = "#0a6b2d" if d["met"] else "#b3261e"
        top = y(max(d["ratio"], floor))
        parts.append(f'<rect x="{x}" y="{top:.1f}" width="18" height="{y(floor) - top:.1f}" fill="{colour}">'
                     f'<title>{d["date"]}: {d["ratio"] * 100:.4f} %</title></rect>')
    parts.append(f'<line x1="46" x2="{width - 6}" y1="{y(objective):.1f}" y2="{y(objective):.1f}" stroke="#1b1f24" '
                 'stroke-dasharray="4 3"/></svg>')
    return "".join(parts)


def month_summary(config: Any, store: Any, contract: Any, month: str, now: float) -> dict[str, Any]:
    """A month's report in brief: availability, coverage, credit and whether it is final."""
    from monitor.reports.model import pct
    from monitor.reports.report import build_report

    report = build_report(store, config, month, now=now, contract_id=contract.id)
    c = report.contracts[0]
    return {"month": month, "availability": c.availability.value_pct, "coverage": pct(c.coverage),
            "credit": f"{c.credits.total} {c.currency}", "status": c.credits.status,
            "to_date": c.period.month_to_date}


def request_times(contract: Any, requests: list, checked: dict[str, float], now: float) -> list[dict[str, Any]]:
    """The contract's requests with their first-response and resolution business time against the targets
    (the report's rule: monitor.sla.business.clock_verdict, a running clock judged up to its source's last
    read)."""
    from monitor.sla.business import calendar_for, clock_verdict

    out = []
    for r in requests:
        target = contract.response_targets.get(r.severity)
        row: dict[str, Any] = {"source": r.source, "id": r.external_id, "subject": r.subject,
                               "severity": r.severity, "status": r.status}
        for clock, stop, limit in (("first_response", r.first_response, target and target.acknowledge),
                                   ("resolution", r.resolved, target and target.resolve)):
            spent, ok = clock_verdict(calendar_for(contract, r.severity), r.opened, stop, r.pauses, limit or 0.0,
                                      min(now, checked.get(r.source, now)))
            row[clock] = {"business_s": spent, "target_s": limit, "running": stop is None,
                          "met": None if limit is None else ok}
        out.append(row)
    return out
