"""Monthly SLA and uptime-credit reports.

:func:`build_report` builds the typed report model (:mod:`monitor.reports.model`) from the engine's figures,
converting units once; JSON (schema ``slawatch.report/1``, README "Monthly reports"), CSV (here), HTML and PDF
(:mod:`monitor.reports.html`) are renderers of that model. Money and percentages are exact; they are written
as strings.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, Callable
from zoneinfo import ZoneInfo

from monitor import __version__
from monitor.config import Config
from monitor.config.sites import multi_site, unit_id
from monitor.reports.model import (SCHEMA, Availability, Chronic, ChronicMonth, ContractAvailability, ContractPeriod,
                                   ContractReport, CreditLine, Credits, Cycles, Day, Excluded, Jitter, Loss, OutageItem,
                                   Outages, Percentiles, Period, Report, RequestBreach, RequestFigures, RequestsReport,
                                   SeverityResponse, TargetReport, Tickets,
                                   Vantage, Voice, pct, report_dict, shown_ms)
from monitor.sla.credits import ContractCredit, contract_credit, minor_unit
from monitor.sla.intervals import clip, normalize
from monitor.sla.maintenance import MaintenanceCalendar
from monitor.sla.monthly import ContractMonth, compute_month, load_month
from monitor.sla.timeline import outage_span
from monitor.sla.periods import local_to_ms, parse_month, to_ms
from monitor.sla.rollup import Rollup
from monitor.sla.availability import availability
from monitor.store.base import Ticket, TicketStore
from monitor.tickets.ledger import REQUEST_KIND, response_times

__all__ = ["build_report", "render_csv", "to_json", "SCHEMA", "Report", "previous_months", "paper_for"]


def _local(ms: int, tz: str) -> datetime:
    """The engine's ms as an aware time in ``tz`` (the model's one conversion of an instant)."""
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(tz))


#: territories whose paper is US Letter (CLDR supplemental data, measurementData/paperSize); A4 elsewhere
LETTER_TERRITORIES = frozenset({"BZ", "CA", "CL", "CO", "CR", "GT", "MX", "NI", "PA", "PH", "PR", "SV", "US", "VE"})


def paper_for(contract) -> str:
    """The report's paper: the contract's ``paper``, else its locale's territory's (A4 without a locale)."""
    if contract.paper is not None:
        return contract.paper
    territory = (contract.locale or "").replace("-", "_").partition("_")[2]
    return "Letter" if territory in LETTER_TERRITORIES else "A4"


def previous_months(month: str, n: int) -> list[str]:
    """The ``n`` months up to and including ``month``, oldest first."""
    year, mon = int(month[:4]), int(month[5:])
    out = []
    for _ in range(n):
        out.append(f"{year:04d}-{mon:02d}")
        year, mon = (year - 1, 12) if mon == 1 else (year, mon - 1)
    return out


def _month_missed(cm: ContractMonth) -> bool | None:
    if cm.met is None:
        return None
    if cm.met is False:
        return True
    for t in cm.targets:
        for name, fig in t.objectives.items():
            if name != "availability" and fig.get("met") is False:
                return True
    return False


def _ordered(value: Any) -> Any:
    """JSON evidence with its keys sorted at every level: the same text from every store (jsonb reorders keys)."""
    if isinstance(value, dict):
        return {k: _ordered(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_ordered(v) for v in value]
    return value


def _tickets(store: TicketStore, contract: str, start: float, end: float) -> list[Ticket]:
    return store.tickets_overlapping(contract, start, end)


def _with_sites(outage, down_by_target: dict, units) -> dict:
    """A consensus outage's evidence with each site's own: the site's outage overlapping it, with its last good
    and first bad cycles."""
    evidence = dict(outage.evidence or {})
    if not units:
        return evidence
    sites = {k: dict(v) for k, v in (evidence.get("sites") or {}).items()}
    end = outage.end if outage.end is not None else float("inf")
    for site, uid in units:
        own = [o for o in down_by_target.get(uid, ()) if o.start < end and (o.end is None or o.end > outage.start)]
        entry = sites.setdefault(site, {})
        if own:
            first = min(own, key=lambda o: o.start)
            entry.update({"last_good": (first.evidence or {}).get("last_good"),
                          "first_bad": (first.evidence or {}).get("first_bad"), "saw_it_down": True})
        else:
            entry["saw_it_down"] = False
    evidence["sites"] = sites
    return evidence


def _days(period, tz: str) -> list[tuple[str, int, int]]:
    """The period's local days: (date, start ms, end ms)."""
    out: list[tuple[str, int, int]] = []
    day = datetime.fromtimestamp(period.start_ms / 1000, ZoneInfo(tz)).replace(tzinfo=None)
    while True:
        lo = local_to_ms(day, tz)
        if lo >= period.end_ms:
            return out
        out.append((day.strftime("%Y-%m-%d"), lo, min(local_to_ms(day + timedelta(days=1), tz), period.end_ms)))
        day += timedelta(days=1)


def _daily(days: list[tuple[str, int, int]], down, unknown, maint, policy: str, horizon: int) -> tuple[Day, ...]:
    """Each day's availability from the month's own intervals, so the days add up to the month figure. A day
    that no outage, unknown or maintenance interval touches is whole without computing it; a day after
    ``horizon`` (now, in a month still running) has no figure yet, and today's runs up to now."""
    events = normalize([*down, *unknown, *maint])
    out = []
    j = 0
    for date, lo, day_end in days:
        if lo >= horizon:
            out.append(Day(date, None, 0.0))
            continue
        hi = min(day_end, horizon)
        while j < len(events) and events[j][1] <= lo:
            j += 1
        if j == len(events) or events[j][0] >= hi:
            out.append(Day(date, Fraction(1), 0.0))
            continue
        a = availability((lo, hi), clip(down, lo, hi), clip(unknown, lo, hi), clip(maint, lo, hi), policy)
        out.append(Day(date, a.ratio, a.downtime_ms / 1000))
    return tuple(out)


def _outage_items(tm, contract, period, own: list, tickets: list[Ticket], now: float, down_by_target: dict,
                  units) -> tuple[OutageItem, ...]:
    """A target's outages in the period: each clipped to it (engine ms, from :func:`outage_span`), its counted
    downtime, the probe evidence (each site's, for a multi-site target) and the tickets opened for it (matched in
    the store's seconds, with a minute's slack either side)."""
    items = []
    end_s = period.end_ms / 1000
    tz = contract.timezone
    for o in own:
        end = o.end if o.end is not None else min(now, end_s)
        span = outage_span(o, to_ms(end))
        s_ms, e_ms = max(span[0], period.start_ms), min(span[1], period.end_ms)
        ids = [t.id for t in tickets if t.incident_key == f"outage:{contract.id}:{tm.target}"
               and t.opened <= end + 60 and (t.resolved is None or t.resolved >= o.start - 60)]
        parents = sorted({t.parent_id for t in tickets if t.id in ids and t.parent_id is not None})
        items.append(OutageItem(
            start=_local(s_ms, tz), end=_local(e_ms, tz), duration_s=(e_ms - s_ms) / 1000, ongoing=o.end is None,
            targets=(tm.target,),
            counted_downtime_s=sum(e - s for s, e in clip(list(tm.availability.downtime), s_ms, e_ms)) / 1000,
            probe_evidence=_ordered(_with_sites(o, down_by_target, units)), tickets=tuple(ids + parents)))
    return tuple(items)


def _period(period, tz: str) -> Period:
    """A period's local start and end and its length in seconds."""
    return Period(_local(period.start_ms, tz), _local(period.end_ms, tz), period.seconds)


def _percentiles(dist, objective: dict | None) -> Percentiles:
    figures = {k: v for k, v in (objective or {}).items() if k != "met"}
    return Percentiles(dist.quantile(0.5), dist.quantile(0.95), dist.quantile(0.99),
                       (objective or {}).get("met"), figures)


def _target_report(tm, contract, period, items: tuple[OutageItem, ...], days, vantage) -> TargetReport:
    """One target's month: coverage, excluded time, downtime, availability, outages, latency, response time,
    loss, jitter, voice, cycles and the daily figures (each figure from the engine's ms, in seconds)."""
    a, r, obj = tm.availability, tm.rollup, tm.objectives
    objectives = contract.objectives
    return TargetReport(
        id=tm.target, kind=tm.kind, period=_period(period, contract.timezone), coverage=tm.coverage,
        vantage=None if vantage is None else Vantage(tuple(vantage.sites), vantage.quorum),
        excluded=Excluded(tm.maintenance_only_ms / 1000, tm.out_of_service_ms / 1000, a.unknown_ms / 1000,
                          a.excluded_ms / 1000, a.unknown_policy),
        downtime_s=a.downtime_ms / 1000,
        availability=Availability(objectives.availability, a.ratio, a.met(objectives.availability)),
        outages=Outages(tm.outage_count, tm.mttr_s, tm.longest_outage_s, items),
        latency=_percentiles(r.rtt, obj.get("latency")),
        response_time=_percentiles(r.response, obj.get("response_time")),
        loss=Loss(r.loss_fraction, objectives.loss, obj.get("loss", {}).get("met"),
                  r.loss_basis),
        jitter=Jitter(r.jitter_mean, r.jitter_max if r.jitter_count else None, objectives.jitter,
                      obj.get("jitter", {}).get("met")),
        voice=None if obj.get("voice") is None else Voice(obj["voice"]),
        cycles=Cycles(r.cycles, r.good, r.bad, r.unknown, r.maintenance, tm.reconciled or None),
        # from the month's own intervals, so the days add up to the month figure
        daily=_daily(days, normalize(tm.down), normalize(tm.unknown), tm.maintenance, contract.unknown_time,
                     a.end_ms),
    )


def _chronic(contract, month: str, cm: ContractMonth, month_of: Callable[[str], list[ContractMonth]]) -> Chronic | None:
    """Chronic failure: the months of the contract's window that missed an objective, and whether the
    termination right is reached. ``month_of`` computes (once) every contract's figures of a month."""
    if contract.chronic is None:
        return None
    history = []
    for m in previous_months(month, contract.chronic.window_months):
        cm_m = cm if m == month else next(c for c in month_of(m) if c.contract == contract.id)
        history.append(ChronicMonth(m, cm_m.ratio, _month_missed(cm_m)))
    return Chronic(contract.chronic.missed_months, contract.chronic.window_months, tuple(history))


def _ticket_response(contract, tickets: list[Ticket], start_s: float) -> dict[str, SeverityResponse]:
    """Per severity: the period's tickets (children left out) that were acknowledged and resolved within the
    contract's response targets (the store's seconds)."""
    response: dict[str, SeverityResponse] = {}
    for t in tickets:
        if t.parent_id is not None or t.opened < start_s or t.kind == REQUEST_KIND:
            continue  # a customer request's escalation is the request's, in its own section
        target = contract.response_targets.get(t.severity)
        cell = response.setdefault(t.severity, SeverityResponse())
        cell.tickets += 1
        times = response_times(t, contract)  # the ledger's one rule for "met"
        for kind, count in (("acknowledge", cell.acknowledge), ("resolve", cell.resolve)):
            if target is not None:
                count.target_s = getattr(target, kind)
            if times[f"{kind}_met"] is not None:
                count.measured += 1
                count.met += int(times[f"{kind}_met"])
    return response


def _quantile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile by the nearest-rank rule (a value that occurred), or None."""
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(Fraction(str(q)) * len(ordered))  # exact: 0.9 * 10 is 9, not 9.000000000000002
    return ordered[max(rank, 1) - 1]


def _requests(store, contract, start_s: float, end_s: float, now: float,
              links: dict[str, str] | None = None) -> RequestsReport | None:
    """The contract's customer requests opened in the period (#28): per severity the first-response and
    resolution clocks in its support hours (monitor.sla.business) against ``response_targets`` (acknowledge:
    the first response; resolve: the resolution), and each breach. A clock still running counts once it is past
    its target by the last successful read of its source (after that its time is unknown: a request answered
    while the source was down is never a breach); one within it is not measured yet."""
    from monitor.sla.business import calendar_for, clock_verdict

    rows = store.requests(contract=contract.id, start=start_s, end=end_s)
    if not rows:
        return None
    checked = store.request_sources_checked()
    figures, breaches = [], []
    for sev in ("critical", "major", "minor"):
        mine = [r for r in rows if r.severity == sev]
        if not mine:
            continue
        cal, target = calendar_for(contract, sev), contract.response_targets.get(sev)
        clocks: dict[str, list[float]] = {"first_response": [], "resolution": []}
        met = {"first_response": 0, "resolution": 0}
        measured = {"first_response": 0, "resolution": 0}
        for r in mine:
            for clock, stop, limit in (("first_response", r.first_response, target and target.acknowledge),
                                       ("resolution", r.resolved, target and target.resolve)):
                until = min(now, checked.get(r.source, now))
                spent, ok = clock_verdict(cal, r.opened, stop, r.pauses, limit or 0.0, until)
                if stop is not None:
                    clocks[clock].append(spent)
                if limit is None or ok is None:
                    continue
                measured[clock] += 1
                if ok:
                    met[clock] += 1
                else:
                    base = (links or {}).get(r.source)
                    breaches.append(RequestBreach(r.source, r.external_id, sev, clock, spent, float(limit),
                                                  None if base is None else base + r.external_id, r.subject))
        figures.append(RequestFigures(sev, len(mine), met["first_response"], measured["first_response"],
                                      met["resolution"], measured["resolution"],
                                      _quantile(clocks["first_response"], 0.5), _quantile(clocks["first_response"], 0.9),
                                      _quantile(clocks["resolution"], 0.5), _quantile(clocks["resolution"], 0.9)))
    utc = ZoneInfo("UTC")
    read = tuple((src, None if src not in checked else datetime.fromtimestamp(checked[src], utc))
                 for src in sorted({r.source for r in rows}))
    return RequestsReport(tuple(figures), tuple(breaches), read)


def _request_shares(requests: RequestsReport | None) -> dict[str, Fraction | None]:
    """Per request clock, the share of the month's judged requests that met their target, in percent, exact
    (None when none was judged): what the contract's first_response and resolution credit tiers compare."""
    out: dict[str, Fraction | None] = {}
    for clock in ("first_response", "resolution"):
        met = sum(getattr(f, f"{clock}_met") for f in requests.by_severity) if requests else 0
        measured = sum(getattr(f, f"{clock}_measured") for f in requests.by_severity) if requests else 0
        out[clock] = Fraction(met * 100, measured) if measured else None
    return out


def _credits(contract, credit: ContractCredit, items: dict[str, tuple[OutageItem, ...]]) -> Credits:
    return Credits(
        basis=credit.basis, combine=credit.combine, fees=credit.fees, cap_pct=credit.cap_pct,
        uncapped=credit.uncapped, total=credit.total, capped=credit.capped, status=credit.status,
        min_coverage_pct=contract.credit_min_coverage, coverage_notes=tuple(credit.coverage_notes),
        lines=tuple(CreditLine(line.scope, line.objective, line.compliance_pct, line.tier_below_pct, line.credit_pct,
                               line.fee, line.amount, tuple(line.evidence)) for line in credit.lines))


def _contract_report(contract, cm: ContractMonth, credit: Credits, chronic: Chronic | None, tickets: list[Ticket],
                     now: float, targets: list[TargetReport], requests: RequestsReport | None = None) -> ContractReport:
    """One contract's month: its period, availability, credits with their evidence, chronic failure, tickets."""
    period, tz = cm.period, contract.timezone
    return ContractReport(
        id=contract.id, customer=contract.customer, provider=contract.provider, timezone=tz,
        currency=contract.currency, locale=contract.locale, paper=paper_for(contract),
        period=ContractPeriod(_local(period.start_ms, tz), _local(period.end_ms, tz), period.seconds,
                              month_to_date=to_ms(now) < period.end_ms,
                              up_to=_local(min(to_ms(now), period.end_ms), tz)),
        coverage=cm.coverage,
        availability=ContractAvailability(contract.objectives.availability, cm.ratio, cm.met,
                                          eligible_s=cm.eligible_ms / 1000, downtime_s=cm.downtime_ms / 1000),
        credits=credit, chronic=chronic,
        tickets=Tickets(tuple(t.id for t in tickets), _ticket_response(contract, tickets, period.start_ms / 1000)),
        targets=tuple(targets),
        requests=requests,
    )


def build_report(store, config: Config, month: str, *, now: float, contract_id: str | None = None,
                 progress: Callable[[int, int, str], None] | None = None) -> Report:
    """The monthly report: per contract and target the figures, credits and the evidence behind each.

    Units: the engine's figures are integer ms (period, intervals); outages and tickets come from the store in
    seconds and are converted once, by :mod:`monitor.sla.timeline` (outages) or compared in seconds (ticket
    matching); every figure enters the model in seconds (``*_s``) or as an aware local time."""
    parse_month(month, "UTC")  # validates the form
    contracts = [c for c in config.contracts if contract_id in (None, c.id)]
    if contract_id is not None:  # one contract's report reads and computes that contract's targets only
        config = config.model_copy(update={"contracts": contracts,
                                           "targets": [t for t in config.targets if t.contract == contract_id]})
    calendar = MaintenanceCalendar(config)  # each month's maintenance expanded once for every figure of the report
    inputs = load_month(store, config, month, calendar)
    computed = {month: compute_month(config, inputs, to_ms(now), calendar)}

    def month_of(m: str) -> list[ContractMonth]:  # each month once for every contract's history
        if m not in computed:
            computed[m] = compute_month(config, load_month(store, config, m, calendar), to_ms(now), calendar)
        return computed[m]

    months = {cm.contract: cm for cm in computed[month]}
    targets_of = config.by_contract()
    #: multi-site targets (monitor.cluster.consensus): their units by site, whose own outages are each site's evidence
    several = {t.id: t for t in multi_site(config.targets)}
    units_of = {tid: [(site, unit_id(tid, site)) for site in t.vantage.sites] for tid, t in several.items()}
    down_by_target: dict[str, list] = {}
    for o in inputs.records:
        if o.kind == "down":
            down_by_target.setdefault(o.target, []).append(o)
    total_targets = sum(len(months[c.id].targets) for c in contracts)
    #: a request's page in its source system, by source (RT's display page)
    links = {src.name: f"{str(src.url).rstrip('/')}/Ticket/Display.html?id=" for src in config.request_sources}
    done = 0
    out_contracts = []
    for contract in contracts:
        cm = months[contract.id]
        period = cm.period
        start_s, end_s = period.start_ms / 1000, period.end_ms / 1000
        tickets = _tickets(store, contract.id, start_s, end_s)
        days = _days(period, contract.timezone)
        evidence: dict[str, tuple[OutageItem, ...]] = {}
        target_reports = []
        combined = Rollup()
        for tm in cm.targets:
            done += 1
            if progress:
                progress(done, total_targets, tm.target)
            combined.merge(tm.rollup)
            own = [o for o in down_by_target.get(tm.target, ()) if o.contract == contract.id
                   and o.start < end_s and (o.end is None or o.end > start_s)]
            items = _outage_items(tm, contract, period, own, tickets, now, down_by_target, units_of.get(tm.target, ()))
            evidence[tm.target] = items
            vantage = several[tm.target].vantage if tm.target in several else None
            target_reports.append(_target_report(tm, contract, period, items, days, vantage))
        fees = {t.id: t.monthly_fee for t in targets_of.get(contract.id, ())}
        requests = _requests(store, contract, start_s, end_s, now, links)
        credit = contract_credit(contract, cm.targets, cm.ratio, combined, fees, evidence, cm.coverage,
                                 closed=to_ms(now) >= period.end_ms, requests=_request_shares(requests))
        chronic = _chronic(contract, month, cm, month_of)
        out_contracts.append(_contract_report(contract, cm, _credits(contract, credit, evidence), chronic, tickets,
                                              now, target_reports, requests))
    return Report(month, datetime.fromtimestamp(now, ZoneInfo("UTC")), __version__, tuple(out_contracts))


# --------------------------------------------------------------------------- CSV

#: one row per target, then one ``row=contract`` row per contract that carries the contract's figures and its
#: credit total; ``contract_credit_total`` is filled on that row only, so the column sums to the real credit.
#: ``target_credit`` (target rows, ``credit_basis: target`` only) is each circuit's credit before the cap.
CSV_COLUMNS = ["row", "month", "contract", "customer", "target", "kind", "timezone", "currency", "period_s", "maintenance_s",
               "unknown_s", "downtime_s", "availability_pct", "objective_pct", "met", "outages", "mttr_s",
               "longest_outage_s", "latency_p95_ms", "latency_met", "response_p95_ms", "response_met", "loss_pct", "jitter_mean_ms", "mos_mean", "mos_min",
               "coverage_pct", "target_credit", "contract_credit_total", "credit_status"]


def render_csv(report: Report) -> str:
    """The report as CSV: one row per target, then one per contract carrying its credit total."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for c in report.contracts:
        per_target: dict[str, Decimal] = {}
        if c.credits.basis == "target":
            for line in c.credits.lines:
                per_target[line.scope] = per_target.get(line.scope, Decimal(0)) + line.amount
        digits = minor_unit(c.currency)
        for t in c.targets:
            target_credit = ""
            if c.credits.basis == "target":
                target_credit = str(per_target.get(t.id, Decimal(0)).quantize(Decimal(1).scaleb(-digits)))
            writer.writerow({
                "row": "target", "month": report.month, "contract": c.id, "customer": c.customer, "target": t.id,
                "kind": t.kind, "timezone": c.timezone, "currency": c.currency,
                "period_s": t.period.seconds, "maintenance_s": t.excluded.maintenance_s,
                "unknown_s": t.excluded.unknown_s, "downtime_s": t.downtime_s,
                "availability_pct": t.availability.value_pct, "objective_pct": str(t.availability.objective_pct),
                "met": t.availability.met, "outages": t.outages.count, "mttr_s": t.outages.mttr_s,
                "longest_outage_s": t.outages.longest_s,
                "latency_p95_ms": shown_ms(t.latency.p95_s), "latency_met": t.latency.met, "loss_pct": t.loss.value_pct,
                "response_p95_ms": shown_ms(t.response_time.p95_s), "response_met": t.response_time.met,
                "jitter_mean_ms": shown_ms(t.jitter.mean_s),
                "mos_mean": t.voice.mos_mean if t.voice else None, "mos_min": t.voice.mos_min if t.voice else None,
                "coverage_pct": pct(t.coverage), "target_credit": target_credit, "contract_credit_total": "",
            })
        writer.writerow({
            "row": "contract", "month": report.month, "contract": c.id, "customer": c.customer, "target": "",
            "kind": "", "timezone": c.timezone, "currency": c.currency,
            "period_s": c.period.seconds, "downtime_s": c.availability.downtime_s,
            "availability_pct": c.availability.value_pct, "objective_pct": str(c.availability.objective_pct),
            "met": c.availability.met, "outages": sum(t.outages.count for t in c.targets),
            "coverage_pct": pct(c.coverage), "contract_credit_total": str(c.credits.total),
            # final, provisional or withheld: a provisional credit must not read as final
            "credit_status": c.credits.status,
        })
    return out.getvalue()


# --------------------------------------------------------------------------- HTML


def progress_bar(stream=sys.stderr) -> Callable[[int, int, str], None] | None:
    """A one-line progress bar on a terminal; None when not a terminal."""
    if not stream.isatty():
        return None

    def show(done: int, total: int, what: str) -> None:
        width = 30
        filled = int(width * done / max(total, 1))
        stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {what[:30]:<30}")
        if done >= total:
            stream.write("\n")
        stream.flush()

    return show


#: above this many targets the JSON is written compact (json's C encoder: about 25x faster than indenting,
#: 0.4 s against 10 s for 10,000 targets); ``python -m json.tool`` indents it when a person wants to read it
INDENT_MAX_TARGETS = 1000


def to_json(report: Report) -> str:
    """The report as its JSON document (:func:`monitor.reports.model.report_dict`)."""
    doc = report_dict(report)
    if report.target_count > INDENT_MAX_TARGETS:
        return json.dumps(doc, separators=(",", ":"), default=str)
    return json.dumps(doc, indent=2, default=str)
