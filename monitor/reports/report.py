"""Monthly SLA and uptime-credit reports.

:func:`build_report` makes the JSON document (schema ``slawatch.report/1``, see
docs in README "Monthly reports"); CSV, HTML and PDF are rendered from it.
Money and percentages are exact decimals written as strings.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, Callable
from zoneinfo import ZoneInfo

from monitor import __version__
from monitor.config import Config
from monitor.config.sites import multi_site, unit_id
from monitor.sla.credits import contract_credit, display_pct, minor_unit
from monitor.sla.intervals import clip, normalize
from monitor.sla.maintenance import MaintenanceCalendar
from monitor.sla.monthly import ContractMonth, compute_month, load_month
from monitor.sla.timeline import outage_span
from monitor.sla.periods import local_to_ms, parse_month, to_ms
from monitor.sla.rollup import Rollup
from monitor.sla.availability import availability
from monitor.store.base import Ticket, TicketStore
from monitor.tickets.ledger import response_times

__all__ = ["build_report", "render_csv", "SCHEMA", "previous_months", "paper_for"]

SCHEMA = "slawatch.report/1"


def _iso(ms_or_s: float | None, tz: str = "UTC", ms: bool = False) -> str | None:
    if ms_or_s is None:
        return None
    ts = ms_or_s / 1000 if ms else ms_or_s
    return datetime.fromtimestamp(ts, ZoneInfo(tz)).isoformat()


def _pct(frac: Fraction | None) -> str | None:
    """A ratio as a percentage with 4 decimals, truncated: a month just short of its objective never shows
    the objective itself."""
    if frac is None:
        return None
    return str(display_pct(frac * 100, 4))


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


_WHOLE_DAY = _pct(Fraction(1))


def _daily(days: list[tuple[str, int, int]], down, unknown, maint, policy: str) -> list[dict]:
    """Each day's availability from the month's own intervals, so the days add up to the month figure. A day
    that no outage, unknown or maintenance interval touches is whole without computing it."""
    events = normalize([*down, *unknown, *maint])
    out = []
    j = 0
    for date, lo, hi in days:
        while j < len(events) and events[j][1] <= lo:
            j += 1
        if j == len(events) or events[j][0] >= hi:
            out.append({"date": date, "availability_pct": _WHOLE_DAY, "downtime_s": 0.0})
            continue
        a = availability((lo, hi), clip(down, lo, hi), clip(unknown, lo, hi), clip(maint, lo, hi), policy)
        out.append({"date": date, "availability_pct": _pct(a.ratio), "downtime_s": a.downtime_ms / 1000})
    return out


def _outage_items(tm, contract, period, own: list, tickets: list[Ticket], now: float, down_by_target: dict,
                  units) -> list[dict]:
    """A target's outages in the period: each clipped to it (engine ms, from :func:`outage_span`), its counted
    downtime, the probe evidence (each site's, for a multi-site target) and the tickets opened for it (matched in
    the store's seconds, with a minute's slack either side)."""
    items = []
    end_s = period.end_ms / 1000
    for o in own:
        end = o.end if o.end is not None else min(now, end_s)
        span = outage_span(o, to_ms(end))
        s_ms, e_ms = max(span[0], period.start_ms), min(span[1], period.end_ms)
        ids = [t.id for t in tickets if t.incident_key == f"outage:{contract.id}:{tm.target}"
               and t.opened <= end + 60 and (t.resolved is None or t.resolved >= o.start - 60)]
        parents = sorted({t.parent_id for t in tickets if t.id in ids and t.parent_id is not None})
        items.append({
            "start": _iso(s_ms, contract.timezone, ms=True), "end": _iso(e_ms, contract.timezone, ms=True),
            "duration_s": (e_ms - s_ms) / 1000, "ongoing": o.end is None, "targets": [tm.target],
            "counted_downtime_s": sum(e - s for s, e in clip(list(tm.availability.downtime), s_ms, e_ms)) / 1000,
            "probe_evidence": _ordered(_with_sites(o, down_by_target, units)),
            "tickets": ids + parents,
        })
    return items


def _period(period, tz: str) -> dict:
    """A period's local start and end and its length in seconds."""
    return {"start": _iso(period.start_ms, tz, ms=True), "end": _iso(period.end_ms, tz, ms=True),
            "seconds": period.seconds}


def _target_doc(tm, contract, period, items: list[dict], days, vantage) -> dict:
    """One target's month: coverage, excluded time, downtime, availability, outages, latency, response time,
    loss, jitter, voice, cycles and the daily figures (each figure from the engine's ms, in seconds)."""
    a, r, obj = tm.availability, tm.rollup, tm.objectives
    return {
        "id": tm.target, "kind": tm.kind,
        "period": _period(period, contract.timezone),
        "coverage_pct": _pct(tm.coverage),
        **({"vantage": {"sites": list(vantage.sites), "quorum": vantage.quorum}} if vantage is not None else {}),
        "excluded_s": {"maintenance": tm.maintenance_only_ms / 1000, "out_of_service": tm.out_of_service_ms / 1000,
                       "unknown": a.unknown_ms / 1000,
                       "total": a.excluded_ms / 1000, "unknown_policy": a.unknown_policy},
        "downtime_s": a.downtime_ms / 1000,
        "availability": {"objective_pct": str(contract.objectives.availability), "value_pct": _pct(a.ratio),
                         "met": a.met(contract.objectives.availability),
                         "exact": None if a.ratio is None else f"{a.ratio.numerator}/{a.ratio.denominator}"},
        "outages": {"count": tm.outage_count, "mttr_s": tm.mttr_s, "longest_s": tm.longest_outage_s, "items": items},
        "latency": {**({k: v for k, v in obj["latency"].items() if k != "met"} if "latency" in obj else {}),
                    "p50_s": r.rtt.quantile(0.5), "p95_s": r.rtt.quantile(0.95), "p99_s": r.rtt.quantile(0.99),
                    "met": obj.get("latency", {}).get("met")},
        "response_time": {**{k: v for k, v in obj.get("response_time", {}).items() if k != "met"},
                          "p50_s": r.response.quantile(0.5), "p95_s": r.response.quantile(0.95),
                          "p99_s": r.response.quantile(0.99), "met": obj.get("response_time", {}).get("met")},
        "loss": {"value_pct": None if r.loss is None else r.loss * 100,
                 "target_pct": None if contract.objectives.loss is None else str(contract.objectives.loss),
                 "met": obj.get("loss", {}).get("met"), "basis": r.loss_basis},
        "jitter": {"mean_s": r.jitter_mean, "max_s": r.jitter_max if r.jitter_count else None,
                   "target_s": contract.objectives.jitter, "met": obj.get("jitter", {}).get("met")},
        "voice": obj.get("voice"),
        "cycles": {"total": r.cycles, "good": r.good, "bad": r.bad, "unknown": r.unknown, "maintenance": r.maintenance,
                   # maintenance changed after ingestion: how the month was rebuilt (monitor.sla.reconcile)
                   "maintenance_reconciled": tm.reconciled.as_dict() if tm.reconciled else None},
        # from the month's own intervals, so the days add up to the month figure
        "daily": _daily(days, normalize(tm.down), normalize(tm.unknown), tm.maintenance, contract.unknown_time),
    }


def _chronic(contract, month: str, cm: ContractMonth, month_of: Callable[[str], list[ContractMonth]]) -> dict | None:
    """Chronic failure: the months of the contract's window that missed an objective, and whether the
    termination right is reached. ``month_of`` computes (once) every contract's figures of a month."""
    if contract.chronic is None:
        return None
    history = []
    for m in previous_months(month, contract.chronic.window_months):
        cm_m = cm if m == month else next(c for c in month_of(m) if c.contract == contract.id)
        history.append({"month": m, "availability_pct": _pct(cm_m.ratio), "missed": _month_missed(cm_m)})
    missed = sum(1 for h in history if h["missed"])
    return {"missed_months_required": contract.chronic.missed_months,
            "window_months": contract.chronic.window_months, "months": history, "missed": missed,
            "termination_right_reached": missed >= contract.chronic.missed_months}


def _ticket_response(contract, tickets: list[Ticket], start_s: float) -> dict[str, dict]:
    """Per severity: the period's tickets (children left out) that were acknowledged and resolved within the
    contract's response targets (the store's seconds)."""
    response: dict[str, dict] = {}
    for t in tickets:
        if t.parent_id is not None or t.opened < start_s:
            continue
        target = contract.response_targets.get(t.severity)
        cell = response.setdefault(t.severity, {"tickets": 0, "acknowledge": {"met": 0, "measured": 0, "target_s": None},
                                                "resolve": {"met": 0, "measured": 0, "target_s": None}})
        cell["tickets"] += 1
        times = response_times(t, contract)  # the ledger's one rule for "met"
        for kind in ("acknowledge", "resolve"):
            if target is not None:
                cell[kind]["target_s"] = getattr(target, kind)
            if times[f"{kind}_met"] is not None:
                cell[kind]["measured"] += 1
                cell[kind]["met"] += int(times[f"{kind}_met"])
    return response


def _contract_doc(contract, cm: ContractMonth, credit, chronic: dict | None, tickets: list[Ticket], now: float,
                  target_docs: list[dict]) -> dict:
    """One contract's month: its period, availability, credits with their evidence, chronic failure, tickets."""
    period = cm.period
    return {
        "id": contract.id, "customer": contract.customer, "provider": contract.provider,
        "timezone": contract.timezone, "currency": contract.currency, "locale": contract.locale,
        "paper": paper_for(contract),
        "period": {**_period(period, contract.timezone), "month_to_date": to_ms(now) < period.end_ms,
                   "up_to": _iso(min(to_ms(now), period.end_ms), contract.timezone, ms=True)},
        "coverage_pct": _pct(cm.coverage),
        "availability": {"objective_pct": str(contract.objectives.availability), "value_pct": _pct(cm.ratio),
                         "met": cm.met, "eligible_s": cm.eligible_ms / 1000, "downtime_s": cm.downtime_ms / 1000,
                         "exact": None if cm.ratio is None else f"{cm.ratio.numerator}/{cm.ratio.denominator}"},
        "credits": {
            "basis": credit.basis, "combine": credit.combine, "fees": str(credit.fees),
            "cap_pct": None if credit.cap_pct is None else str(credit.cap_pct),
            "uncapped": str(credit.uncapped), "total": str(credit.total), "capped": credit.capped,
            "status": credit.status, "min_coverage_pct": str(contract.credit_min_coverage),
            "coverage_notes": credit.coverage_notes,
            "lines": [{"scope": line.scope, "objective": line.objective,
                       "compliance_pct": None if line.compliance_pct is None else str(line.compliance_pct),
                       "tier_below_pct": str(line.tier_below_pct), "credit_pct": str(line.credit_pct),
                       "fee": str(line.fee), "amount": str(line.amount), "evidence": line.evidence}
                      for line in credit.lines],
        },
        "chronic": chronic,
        "tickets": {"ids": [t.id for t in tickets], "response": _ticket_response(contract, tickets,
                                                                                 period.start_ms / 1000)},
        "targets": target_docs,
    }


def build_report(store, config: Config, month: str, *, now: float, contract_id: str | None = None,
                 progress: Callable[[int, int, str], None] | None = None) -> dict:
    """The monthly report document: per contract and target the figures, credits and the evidence behind each.

    Units: the engine's figures are integer ms (period, intervals); outages and tickets come from the store in
    seconds and are converted once, by :mod:`monitor.sla.timeline` (outages) or compared in seconds (ticket
    matching); every figure leaves in seconds (``*_s``) or as local ISO times."""
    parse_month(month, "UTC")  # validates the form
    contracts = [c for c in config.contracts if contract_id in (None, c.id)]
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
    done = 0
    out_contracts = []
    for contract in contracts:
        cm = months[contract.id]
        period = cm.period
        start_s, end_s = period.start_ms / 1000, period.end_ms / 1000
        tickets = _tickets(store, contract.id, start_s, end_s)
        days = _days(period, contract.timezone)
        evidence: dict[str, list[dict]] = {}
        target_docs = []
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
            target_docs.append(_target_doc(tm, contract, period, items, days, vantage))
        fees = {t.id: t.monthly_fee for t in targets_of.get(contract.id, ())}
        credit = contract_credit(contract, cm.targets, cm.ratio, combined, fees, evidence, cm.coverage)
        chronic = _chronic(contract, month, cm, month_of)
        out_contracts.append(_contract_doc(contract, cm, credit, chronic, tickets, now, target_docs))
    return {"schema": SCHEMA, "version": 1, "month": month, "generated_at": _iso(now),
            "slawatch_version": __version__, "contracts": out_contracts}


# --------------------------------------------------------------------------- CSV

#: one row per target, then one ``row=contract`` row per contract that carries the contract's figures and its
#: credit total; ``contract_credit_total`` is filled on that row only, so the column sums to the real credit.
#: ``target_credit`` (target rows, ``credit_basis: target`` only) is each circuit's credit before the cap.
CSV_COLUMNS = ["row", "month", "contract", "customer", "target", "kind", "timezone", "currency", "period_s", "maintenance_s",
               "unknown_s", "downtime_s", "availability_pct", "objective_pct", "met", "outages", "mttr_s",
               "longest_outage_s", "latency_p95_ms", "latency_met", "response_p95_ms", "response_met", "loss_pct", "jitter_mean_ms", "mos_mean", "mos_min",
               "target_credit", "contract_credit_total"]


def render_csv(report: dict) -> str:
    """The report as CSV: one row per target, then one per contract carrying its credit total."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for c in report["contracts"]:
        per_target: dict[str, Decimal] = {}
        if c["credits"]["basis"] == "target":
            for line in c["credits"]["lines"]:
                per_target[line["scope"]] = per_target.get(line["scope"], Decimal(0)) + Decimal(line["amount"])
        digits = minor_unit(c["currency"])
        for t in c["targets"]:
            voice = t["voice"] or {}
            target_credit = ""
            if c["credits"]["basis"] == "target":
                target_credit = str(per_target.get(t["id"], Decimal(0)).quantize(Decimal(1).scaleb(-digits)))
            writer.writerow({
                "row": "target", "month": report["month"], "contract": c["id"], "customer": c["customer"], "target": t["id"],
                "kind": t["kind"], "timezone": c["timezone"], "currency": c["currency"],
                "period_s": t["period"]["seconds"], "maintenance_s": t["excluded_s"]["maintenance"],
                "unknown_s": t["excluded_s"]["unknown"], "downtime_s": t["downtime_s"],
                "availability_pct": t["availability"]["value_pct"], "objective_pct": t["availability"]["objective_pct"],
                "met": t["availability"]["met"], "outages": t["outages"]["count"], "mttr_s": t["outages"]["mttr_s"],
                "longest_outage_s": t["outages"]["longest_s"],
                "latency_p95_ms": None if t["latency"]["p95_s"] is None else round(t["latency"]["p95_s"] * 1000, 3),
                "latency_met": t["latency"]["met"], "loss_pct": t["loss"]["value_pct"],
                "response_p95_ms": None if t["response_time"]["p95_s"] is None
                else round(t["response_time"]["p95_s"] * 1000, 3),
                "response_met": t["response_time"]["met"],
                "jitter_mean_ms": None if t["jitter"]["mean_s"] is None else round(t["jitter"]["mean_s"] * 1000, 3),
                "mos_mean": voice.get("mos_mean"), "mos_min": voice.get("mos_min"),
                "target_credit": target_credit, "contract_credit_total": "",
            })
        writer.writerow({
            "row": "contract", "month": report["month"], "contract": c["id"], "customer": c["customer"], "target": "",
            "kind": "", "timezone": c["timezone"], "currency": c["currency"],
            "period_s": c["period"]["seconds"], "downtime_s": c["availability"]["downtime_s"],
            "availability_pct": c["availability"]["value_pct"], "objective_pct": c["availability"]["objective_pct"],
            "met": c["availability"]["met"], "outages": sum(t["outages"]["count"] for t in c["targets"]),
            "contract_credit_total": c["credits"]["total"],
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


def to_json(report: dict) -> str:
    targets = sum(len(c["targets"]) for c in report.get("contracts", ()))
    if targets > INDENT_MAX_TARGETS:
        return json.dumps(report, separators=(",", ":"), default=str)
    return json.dumps(report, indent=2, default=str)
