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

from . import __version__
from .config import Config
from .credits import contract_credit, display_pct, minor_unit
from .intervals import clip
from .monthly import ContractMonth, compute_month, load_month
from .periods import local_to_ms, parse_month, to_ms
from .rollup import Rollup
from .sla import availability
from .store.base import Store, Ticket

__all__ = ["build_report", "render_csv", "render_html", "render_pdf", "SCHEMA", "previous_months"]

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


def previous_months(month: str, n: int) -> list[str]:
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


def _tickets(store: Store, contract: str, start: float, end: float) -> list[Ticket]:
    return store.tickets_overlapping(contract, start, end)


def _daily(target_month, down, unknown, maint, tz: str, policy: str) -> list[dict]:
    period = target_month.period
    out = []
    day = datetime.fromtimestamp(period.start_ms / 1000, ZoneInfo(tz)).replace(tzinfo=None)
    while True:
        lo = local_to_ms(day, tz)
        if lo >= period.end_ms:
            break
        hi = min(local_to_ms(day + timedelta(days=1), tz), period.end_ms)
        a = availability((lo, hi), down, unknown, maint, policy)
        out.append({"date": day.strftime("%Y-%m-%d"), "availability_pct": _pct(a.ratio), "downtime_s": a.downtime_ms / 1000})
        day += timedelta(days=1)
    return out


def build_report(store, config: Config, month: str, *, now: float, contract_id: str | None = None,
                 progress: Callable[[int, int, str], None] | None = None) -> dict:
    parse_month(month, "UTC")  # validates the form
    contracts = [c for c in config.contracts if contract_id in (None, c.id)]
    inputs = load_month(store, config, month)
    months = {cm.contract: cm for cm in compute_month(config, inputs, to_ms(now))}
    total_targets = sum(len(months[c.id].targets) for c in contracts)
    done = 0
    out_contracts = []
    for contract in contracts:
        cm = months[contract.id]
        period = cm.period
        start_s, end_s = period.start_ms / 1000, period.end_ms / 1000
        tickets = _tickets(store, contract.id, start_s, end_s)
        outage_rows = [o for o in store.outages_between(start_s, end_s) if o.contract == contract.id and o.kind == "down"]
        evidence: dict[str, list[dict]] = {}
        target_docs = []
        combined = Rollup()
        for tm in cm.targets:
            done += 1
            if progress:
                progress(done, total_targets, tm.target)
            combined.merge(tm.rollup)
            own = [o for o in outage_rows if o.target == tm.target]
            items = []
            for o in own:
                end = o.end if o.end is not None else min(now, end_s)
                s_ms, e_ms = max(to_ms(o.start), period.start_ms), min(to_ms(end), period.end_ms)
                ids = [t.id for t in tickets if t.incident_key == f"outage:{contract.id}:{tm.target}"
                       and t.opened <= end + 60 and (t.resolved is None or t.resolved >= o.start - 60)]
                parents = sorted({t.parent_id for t in tickets if t.id in ids and t.parent_id is not None})
                items.append({
                    "start": _iso(s_ms, contract.timezone, ms=True), "end": _iso(e_ms, contract.timezone, ms=True),
                    "duration_s": (e_ms - s_ms) / 1000, "ongoing": o.end is None, "targets": [tm.target],
                    "counted_downtime_s": sum(e - s for s, e in clip(list(tm.availability.downtime), s_ms, e_ms)) / 1000,
                    "probe_evidence": _ordered(o.evidence or {}), "tickets": ids + parents,
                })
            evidence[tm.target] = items
            a = tm.availability
            r = tm.rollup
            obj = tm.objectives
            target_docs.append({
                "id": tm.target, "kind": tm.kind,
                "period": {"start": _iso(period.start_ms, contract.timezone, ms=True),
                           "end": _iso(period.end_ms, contract.timezone, ms=True), "seconds": period.seconds},
                "coverage_pct": _pct(tm.coverage),
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
                "loss": {"value_pct": None if r.loss is None else r.loss * 100,
                         "target_pct": None if contract.objectives.loss is None else str(contract.objectives.loss),
                         "met": obj.get("loss", {}).get("met"), "basis": r.loss_basis},
                "jitter": {"mean_s": r.jitter_mean, "max_s": r.jitter_max if r.jitter_count else None,
                           "target_s": contract.objectives.jitter, "met": obj.get("jitter", {}).get("met")},
                "voice": obj.get("voice"),
                "cycles": {"total": r.cycles, "good": r.good, "bad": r.bad, "unknown": r.unknown, "maintenance": r.maintenance,
                           # maintenance changed after ingestion: how the month was rebuilt (monitor.reconcile)
                           "maintenance_reconciled": tm.reconciled.as_dict() if tm.reconciled else None},
                # from the month's own intervals, so the days add up to the month figure
                "daily": _daily(tm, tm.down, tm.unknown, tm.maintenance, contract.timezone, contract.unknown_time),
            })
        fees = {t.id: t.monthly_fee for t in config.targets if t.contract == contract.id}
        credit = contract_credit(contract, cm.targets, cm.ratio, combined, fees, evidence, cm.coverage)
        chronic = None
        if contract.chronic is not None:
            history = []
            for m in previous_months(month, contract.chronic.window_months):
                cm_m = cm if m == month else next(c for c in compute_month(config, load_month(store, config, m), to_ms(now))
                                                  if c.contract == contract.id)
                history.append({"month": m, "availability_pct": _pct(cm_m.ratio), "missed": _month_missed(cm_m)})
            missed = sum(1 for h in history if h["missed"])
            chronic = {"missed_months_required": contract.chronic.missed_months,
                       "window_months": contract.chronic.window_months, "months": history, "missed": missed,
                       "termination_right_reached": missed >= contract.chronic.missed_months}
        response: dict[str, dict] = {}
        for t in tickets:
            if t.parent_id is not None or t.opened < start_s:
                continue
            target = contract.response_targets.get(t.severity)
            cell = response.setdefault(t.severity, {"tickets": 0, "acknowledge": {"met": 0, "measured": 0, "target_s": None},
                                                       "resolve": {"met": 0, "measured": 0, "target_s": None}})
            cell["tickets"] += 1
            for kind, at in (("acknowledge", t.acknowledged), ("resolve", t.resolved)):
                if target is not None:
                    cell[kind]["target_s"] = getattr(target, kind)
                if at is not None and target is not None:
                    cell[kind]["measured"] += 1
                    cell[kind]["met"] += int(at - t.opened <= getattr(target, kind))
        out_contracts.append({
            "id": contract.id, "customer": contract.customer, "provider": contract.provider,
            "timezone": contract.timezone, "currency": contract.currency,
            "period": {"start": _iso(period.start_ms, contract.timezone, ms=True),
                       "end": _iso(period.end_ms, contract.timezone, ms=True), "seconds": period.seconds,
                       "month_to_date": to_ms(now) < period.end_ms,
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
            "tickets": {"ids": [t.id for t in tickets], "response": response},
            "targets": target_docs,
        })
    return {"schema": SCHEMA, "version": 1, "month": month, "generated_at": _iso(now),
            "slawatch_version": __version__, "contracts": out_contracts}


# --------------------------------------------------------------------------- CSV

#: one row per target, then one ``row=contract`` row per contract that carries the contract's figures and its
#: credit total; ``contract_credit_total`` is filled on that row only, so the column sums to the real credit.
#: ``target_credit`` (target rows, ``credit_basis: target`` only) is each circuit's credit before the cap.
CSV_COLUMNS = ["row", "month", "contract", "customer", "target", "kind", "timezone", "currency", "period_s", "maintenance_s",
               "unknown_s", "downtime_s", "availability_pct", "objective_pct", "met", "outages", "mttr_s",
               "longest_outage_s", "latency_p95_ms", "latency_met", "loss_pct", "jitter_mean_ms", "mos_mean", "mos_min",
               "target_credit", "contract_credit_total"]


def render_csv(report: dict) -> str:
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


def _chart_png(target: dict, objective_pct: float) -> str:
    import base64

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # numeric day positions on a fixed month axis: a day's bar stands at its day even when the month has one
    # day of data (defect: categories made a single day fill the axis)
    n_days = len(target["daily"])
    xs = list(range(1, n_days + 1))
    values = [float(d["availability_pct"]) if d["availability_pct"] is not None else None for d in target["daily"]]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 3.6), gridspec_kw={"height_ratios": [3, 1]})
    known = [(x, v) for x, v in zip(xs, values) if v is not None]
    low = min([v for _, v in known] + [objective_pct])
    floor = max(0, low - (100 - low) * 0.5 - 0.01)
    ax1.bar([x for x, _ in known], [max(v, floor) - floor for _, v in known], bottom=floor, width=0.8,
            color=["#c0392b" if v < objective_pct else "#27ae60" for _, v in known])
    unknown_days = [x for x, v in zip(xs, values) if v is None]
    if unknown_days:  # days without evidence: a grey band, not a gap that reads as "fine"
        ax1.bar(unknown_days, [100 - floor] * len(unknown_days), bottom=floor, width=0.8, color="#d5d8dc",
                label="no evidence")
        ax1.legend(loc="lower left", fontsize=7, frameon=False)
    ax1.set_xlim(0.5, n_days + 0.5)
    ax1.set_ylim(floor, 100.0)
    ax1.set_xticks(xs[::2] if n_days > 16 else xs)
    ax1.axhline(objective_pct, color="#34495e", linestyle="--", linewidth=1)
    ax1.set_ylabel("availability %")
    ax1.set_title(f"{target['id']}: daily availability (objective {objective_pct:g} %)", fontsize=10)
    ax1.tick_params(axis="x", labelsize=7)
    seconds = target["period"]["seconds"]
    ax2.set_xlim(0, seconds)
    ax2.set_ylim(-0.5, 0.5)
    start = datetime.fromisoformat(target["period"]["start"]).timestamp()
    for o in target["outages"]["items"]:
        s = datetime.fromisoformat(o["start"]).timestamp() - start
        # at least a 400th of the month wide, so a short outage is still seen
        ax2.barh(0, max(o["duration_s"], seconds / 400), left=s, height=0.9, color="#c0392b")
    ax2.set_yticks([])
    ticks = list(range(0, n_days, 5))
    ax2.set_xticks([i * 86400 for i in ticks])
    ax2.set_xticklabels([str(i + 1) for i in ticks], fontsize=7)
    ax2.set_title("downtime timeline (day of month)", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _esc(text: Any) -> str:
    import html

    return html.escape("-" if text is None else str(text))


def render_html(report: dict, progress: Callable[[int, int, str], None] | None = None) -> str:
    parts = [f"""<!doctype html><html><head><meta charset="utf-8"><title>SLA report {_esc(report['month'])}</title>
<style>body{{font-family:sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse;margin:.5em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}} th{{background:#f3f3f3}}
td:first-child,th:first-child{{text-align:left}} .missed{{color:#c0392b;font-weight:bold}} .met{{color:#27ae60}}
h2{{border-bottom:2px solid #34495e}} img{{max-width:100%}}</style></head><body>
<h1>Service level report {_esc(report['month'])}</h1><p>Generated {_esc(report['generated_at'])} by slawatch {_esc(report['slawatch_version'])}.</p>"""]
    total = sum(len(c["targets"]) for c in report["contracts"])
    done = 0
    for c in report["contracts"]:
        a = c["availability"]
        cls = "met" if a["met"] else "missed"
        parts.append(f"<h2>{_esc(c['id'])}: {_esc(c['customer'])}</h2>"
                     f"<p>Provider {_esc(c['provider'])}; period {_esc(c['period']['start'])} to {_esc(c['period']['end'])} "
                     f"({_esc(c['period']['seconds'])} s, {_esc(c['timezone'])}).</p>"
                     f"<p>Availability <span class='{cls}'>{_esc(a['value_pct'])} %</span> against {_esc(a['objective_pct'])} %: "
                     f"<b class='{cls}'>{'met' if a['met'] else 'missed' if a['met'] is False else 'no data'}</b>.</p>")
        cr = c["credits"]
        parts.append("<h3>Credit summary</h3><table><tr><th>scope</th><th>objective</th><th>compliance %</th>"
                     "<th>tier (below %)</th><th>credit %</th><th>fee</th><th>amount</th><th>outages</th></tr>")
        for line in cr["lines"]:
            parts.append(f"<tr><td>{_esc(line['scope'])}</td><td>{_esc(line['objective'])}</td><td>{_esc(line['compliance_pct'])}</td>"
                         f"<td>{_esc(line['tier_below_pct'])}</td><td>{_esc(line['credit_pct'])}</td><td>{_esc(line['fee'])}</td>"
                         f"<td>{_esc(line['amount'])} {_esc(c['currency'])}</td><td>{len(line['evidence'])}</td></tr>")
        parts.append(f"<tr><th colspan=6>total{' (capped at ' + _esc(cr['cap_pct']) + ' %)' if cr['capped'] else ''}</th>"
                     f"<th>{_esc(cr['total'])} {_esc(c['currency'])}</th><th></th></tr></table>")
        if c["chronic"]:
            ch = c["chronic"]
            parts.append(f"<p>Chronic failure: objective missed in {ch['missed']} of the last {ch['window_months']} months "
                         f"(termination right at {ch['missed_months_required']}): "
                         f"<b class='{'missed' if ch['termination_right_reached'] else 'met'}'>"
                         f"{'termination right reached' if ch['termination_right_reached'] else 'not reached'}</b>.</p>")
        for t in c["targets"]:
            done += 1
            if progress:
                progress(done, total, t["id"])
            ta = t["availability"]
            parts.append(f"<h3>{_esc(t['id'])} ({_esc(t['kind'])})</h3>"
                         f"<img alt='availability chart of {_esc(t['id'])}' src='{_chart_png(t, float(ta['objective_pct']))}'>"
                         "<table><tr><th>availability %</th><th>downtime s</th><th>maintenance s</th><th>unknown s</th>"
                         "<th>outages</th><th>MTTR s</th><th>longest s</th><th>p95 RTT ms</th><th>loss %</th></tr>"
                         f"<tr><td>{_esc(ta['value_pct'])}</td><td>{_esc(t['downtime_s'])}</td><td>{_esc(t['excluded_s']['maintenance'])}</td>"
                         f"<td>{_esc(t['excluded_s']['unknown'])}</td><td>{_esc(t['outages']['count'])}</td><td>{_esc(t['outages']['mttr_s'])}</td>"
                         f"<td>{_esc(t['outages']['longest_s'])}</td>"
                         f"<td>{_esc(None if t['latency']['p95_s'] is None else round(t['latency']['p95_s'] * 1000, 3))}</td>"
                         f"<td>{_esc(None if t['loss']['value_pct'] is None else round(t['loss']['value_pct'], 4))}</td></tr></table>")
            if t["outages"]["items"]:
                parts.append("<table><tr><th>outage start</th><th>end</th><th>duration s</th><th>failed cycles</th>"
                             "<th>last good</th><th>first bad</th><th>tickets</th></tr>")
                for o in t["outages"]["items"]:
                    ev = o["probe_evidence"]
                    lg, fb = ev.get("last_good") or {}, ev.get("first_bad") or {}
                    parts.append(f"<tr><td>{_esc(o['start'])}</td><td>{_esc(o['end'])}</td><td>{_esc(o['duration_s'])}</td>"
                                 f"<td>{_esc(ev.get('failed_cycles'))}</td><td>{_esc(_iso(lg.get('at')))} {_esc(lg.get('rtt_ms'))} ms</td>"
                                 f"<td>{_esc(_iso(fb.get('at')))} {_esc(fb.get('reason'))}</td><td>{_esc(', '.join(map(str, o['tickets'])))}</td></tr>")
                parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)


def render_pdf(html_path: str, pdf_path: str, timeout: float = 120.0) -> None:
    """Print the HTML to PDF with headless Chromium (Debian's chromium).

    V8 runs without its JIT (``--js-flags=--jitless``): the shipped unit's ``MemoryDenyWriteExecute=yes``
    forbids writable-and-executable memory, and a JIT-ing V8 then cannot reserve its code range and hangs.
    The report's HTML needs no fast JavaScript (its charts are PNG), so the interpreter is enough.
    ``tests/test_reports.py`` prints a PDF under the kernel's own MDWE restriction (PR_SET_MDWE, which
    systemd applies for that setting where the kernel has it).
    """
    import shutil
    import subprocess
    import tempfile

    from .errors import SlawatchError

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise SlawatchError("PDF needs Chromium (apt-get install chromium); HTML, JSON and CSV do not")
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--js-flags=--jitless",
               "--no-pdf-header-footer", f"--print-to-pdf={pdf_path}", f"file://{html_path}"]
    with tempfile.TemporaryDirectory() as profile:
        try:
            proc = subprocess.run([*command[:-3], f"--user-data-dir={profile}", *command[-3:]],
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SlawatchError(f"Chromium did not print the PDF within {timeout:.0f} s") from None
    import os

    if proc.returncode != 0 or not os.path.exists(pdf_path):
        raise SlawatchError(f"Chromium could not print the PDF: {proc.stderr.strip()[-300:]}")


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


def to_json(report: dict) -> str:
    return json.dumps(report, indent=2, default=str)
