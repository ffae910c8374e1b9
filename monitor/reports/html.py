"""The monthly report as a document people can send: HTML for a browser, PDF through headless Chromium.

Rendered from the typed report model (:mod:`monitor.reports.model`, built by
:func:`monitor.reports.report.build_report`), whose JSON stays the exact record:

* a summary page first (per contract: availability against its objective, credit and its status,
  coverage, termination status), then one section per contract and one block per circuit;
* the page size from the contract's paper (``paper``, or its ``locale``'s territory: US Letter where
  CLDR says so, A4 elsewhere), a running header (customer, provider, period, generation time) and
  "page n of m" in the page margins (CSS paged media: ``@page`` margin boxes and named pages);
* timestamps in the contract's zone to the second (``2026-11-10 11:00:00 CET``), every time in a row in
  the same zone; durations as h:mm:ss beside the exact seconds;
* headings kept with what follows, a circuit's block kept on one page where it fits;
* each outage with its cause (the first bad cycle's reason).
"""

from __future__ import annotations

import html
import io
import os
import shutil
import subprocess
import tempfile
from datetime import datetime
from fractions import Fraction
from typing import Any, Callable
from zoneinfo import ZoneInfo

from monitor.errors import SlawatchError
from monitor.reports.model import ContractReport, Report, TargetReport, pct, shown_ms

__all__ = ["render_html", "render_pdf", "chart_png", "local_time", "hms", "PAPER_SIZES"]

#: CSS page sizes by paper name
PAPER_SIZES = {"A4": "A4", "Letter": "letter"}


def _esc(text: Any) -> str:
    return html.escape("-" if text is None else str(text))


def local_time(value: datetime | str | float | None, tz: str) -> str | None:
    """An aware time, an ISO timestamp or unix seconds as local wall time in ``tz`` to the second, with the
    zone's abbreviation (``2026-11-10 11:00:00 CET``); None stays None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str):
        when = datetime.fromisoformat(value)
    else:
        when = datetime.fromtimestamp(float(value), ZoneInfo("UTC"))
    when = when.astimezone(ZoneInfo(tz))
    return when.strftime("%Y-%m-%d %H:%M:%S ") + (when.tzname() or "")


def hms(seconds: float | None) -> str | None:
    """Seconds as h:mm:ss, rounded half up to the whole second (an outage of 119.999 s is 0:02:00; the exact
    seconds stand beside it and in the JSON), with whole days apart from a day on: ``3:00:00``, ``1 d 3:46:40``."""
    if seconds is None:
        return None
    from decimal import ROUND_HALF_UP, Decimal

    s = int(Decimal(repr(seconds)).quantize(Decimal(1), ROUND_HALF_UP))
    days, s = divmod(s, 86400)
    clock = f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{days} d {clock}" if days else clock


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    exact = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"<span class='nw'>{_esc(hms(seconds))}</span> <span class='exact nw'>({_esc(exact)} s)</span>"


def chart_png(target: TargetReport, objective_pct: float) -> str:
    """The circuit's daily availability bars and its downtime timeline, as a PNG data URI."""
    import base64

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # numeric day positions on a fixed month axis: a day's bar stands at its day even when the month has one
    # day of data (defect: categories made a single day fill the axis)
    n_days = len(target.daily)
    xs = list(range(1, n_days + 1))
    values = [float(pct(d.ratio) or 0) if d.ratio is not None else None for d in target.daily]  # as shown
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 3.2), gridspec_kw={"height_ratios": [3, 1]})
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
    ax1.set_title(f"{target.id}: daily availability (objective {objective_pct:g} %)", fontsize=10)
    ax1.tick_params(axis="x", labelsize=7)
    seconds = target.period.seconds
    ax2.set_xlim(0, seconds)
    ax2.set_ylim(-0.5, 0.5)
    start = target.period.start.timestamp()
    for o in target.outages.items:
        s = o.start.timestamp() - start
        # at least a 400th of the month wide, so a short outage is still seen
        ax2.barh(0, max(o.duration_s, seconds / 400), left=s, height=0.9, color="#c0392b")
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


def _css_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _verdict(met: bool | None) -> str:
    return "<b class='met'>met</b>" if met else "<b class='missed'>missed</b>" if met is False else "no data"


def _page_rules(report: Report) -> str:
    """One named page per contract: its paper size and its running header; the summary's page too."""
    generated = report.generated_at
    rules = []
    first = report.contracts[0] if report.contracts else None
    paper = PAPER_SIZES[first.paper] if first else "A4"
    footer = '@bottom-right { content: "page " counter(page) " of " counter(pages); font-size: 8pt; color: #555 }'
    rules.append(f"@page {{ size: {paper}; margin: 18mm 14mm 16mm 14mm; "
                 f"@top-left {{ content: {_css_string('Service level report ' + report.month)}; font-size: 8pt; color: #555 }} "
                 f"@top-right {{ content: {_css_string('generated ' + (local_time(generated, 'UTC') or ''))}; font-size: 8pt; color: #555 }} "
                 f"{footer} }}")
    for i, c in enumerate(report.contracts):
        tz = c.timezone
        period = f"{local_time(c.period.start, tz)} to {local_time(c.period.end, tz)}"
        rules.append(f"@page contract{i} {{ size: {PAPER_SIZES[c.paper]}; "
                     f"@top-left {{ content: {_css_string(c.customer + ' / ' + c.provider)}; font-size: 8pt; color: #555 }} "
                     f"@top-center {{ content: {_css_string(period)}; font-size: 8pt; color: #555 }} "
                     f"@top-right {{ content: {_css_string('generated ' + (local_time(generated, tz) or ''))}; font-size: 8pt; color: #555 }} "
                     f"{footer} }}")
    return "\n".join(rules)


_STYLE = """
body{font-family:"DejaVu Sans",sans-serif;margin:0;color:#222;font-size:10pt}
@media screen{body{margin:2em;max-width:60em}}
table{border-collapse:collapse;margin:.4em 0;width:100%}
td,th{border:1px solid #ccc;padding:2px 6px;font-size:8.5pt;text-align:right;vertical-align:top}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left} td.text{text-align:left}
tr{break-inside:avoid} thead{display:table-header-group}
.nw{white-space:nowrap} .missed{color:#c0392b} .met{color:#1e8449} .note{color:#7d6608} .exact{color:#666;font-size:7.5pt}
h1,h2,h3{break-after:avoid-page} h2{border-bottom:2px solid #34495e;margin-top:0}
.summary{break-after:page} .contract{break-before:page}
.circuit{break-inside:avoid-page;margin-bottom:1em} img{width:100%;max-width:17cm}
"""


def _summary(report: Report) -> list[str]:
    parts = [f"<section class='summary'><h1>Service level report {_esc(report.month)}</h1>",
             f"<p>Generated {_esc(local_time(report.generated_at, 'UTC'))} by slawatch "
             f"{_esc(report.slawatch_version)}. Times are in each contract's zone.</p>",
             "<h2>Summary</h2><table><thead><tr><th>contract</th><th>customer</th><th>period</th><th>availability %</th>"
             "<th>objective %</th><th>result</th><th>coverage %</th><th>credit</th><th>credit status</th>"
             "<th>termination</th></tr></thead><tbody>"]
    for c in report.contracts:
        a, cr, tz = c.availability, c.credits, c.timezone
        period = c.period
        to_date = (f"{report.month} to date, up to {local_time(period.up_to, tz)}" if period.month_to_date
                   else f"{report.month} ({tz})")
        ch = c.chronic
        termination = "-" if not ch else ("<b class='missed'>right reached</b>" if ch.termination_right_reached
                                          else f"not reached ({ch.missed} of {ch.missed_months_required} months)")
        parts.append(f"<tr><td>{_esc(c.id)}</td><td class='text'>{_esc(c.customer)}</td>"
                     f"<td class='text'>{_esc(to_date)}</td><td>{_esc(a.value_pct)}</td><td>{_esc(a.objective_pct)}</td>"
                     f"<td>{_verdict(a.met)}</td><td>{_esc(pct(c.coverage))}</td>"
                     f"<td>{_esc(cr.total)} {_esc(c.currency)}</td><td>{_esc(cr.status)}</td>"
                     f"<td>{termination}</td></tr>")
    parts.append("</tbody></table>")
    for c in report.contracts:
        for note in c.credits.coverage_notes:
            parts.append(f"<p class='note'>{_esc(c.id)}: {_esc(note)}</p>")
    parts.append("</section>")
    return parts


def _contract_head(i: int, c: ContractReport) -> list[str]:
    a, cr, tz = c.availability, c.credits, c.timezone
    period = c.period
    parts = [f"<section class='contract' style='page:contract{i}'><h2>{_esc(c.id)}: {_esc(c.customer)}</h2>",
             f"<p>Provider {_esc(c.provider)}. Period {_esc(local_time(period.start, tz))} to "
             f"{_esc(local_time(period.end, tz))} ({_duration(period.seconds)}, times in {_esc(tz)})"
             + (f"; month to date, up to {_esc(local_time(period.up_to, tz))}" if period.month_to_date else "")
             + ".</p>",
             f"<p>Availability <b>{_esc(a.value_pct)} %</b> against {_esc(a.objective_pct)} %: {_verdict(a.met)}; "
             f"downtime {_duration(a.downtime_s)} of {_duration(a.eligible_s)} eligible; "
             f"coverage {_esc(pct(c.coverage))} %.</p>",
             "<h3>Credits</h3><table><thead><tr><th>scope</th><th>objective</th><th>compliance %</th>"
             "<th>tier (below %)</th><th>credit %</th><th>fee</th><th>amount</th><th>outages</th></tr></thead><tbody>"]
    for line in cr.lines:
        parts.append(f"<tr><td>{_esc(line.scope)}</td><td>{_esc(line.objective)}</td><td>{_esc(line.compliance_pct)}</td>"
                     f"<td>{_esc(line.tier_below_pct)}</td><td>{_esc(line.credit_pct)}</td><td>{_esc(line.fee)}</td>"
                     f"<td>{_esc(line.amount)} {_esc(c.currency)}</td><td>{len(line.evidence)}</td></tr>")
    capped = f" (capped at {_esc(cr.cap_pct)} %)" if cr.capped else ""
    parts.append(f"<tr><th colspan=6>total{capped}, {_esc(cr.status)}</th>"
                 f"<th>{_esc(cr.total)} {_esc(c.currency)}</th><th></th></tr></tbody></table>")
    for note in cr.coverage_notes:
        parts.append(f"<p class='note'>{_esc(note)}</p>")
    if c.requests is not None:
        parts.extend(_requests(c))
    if c.chronic:
        ch = c.chronic
        reached = ch.termination_right_reached
        parts.append(f"<p>Chronic failure: objective missed in {ch.missed} of the last {ch.window_months} months "
                     f"(termination right at {ch.missed_months_required}): "
                     f"<b class='{'missed' if reached else 'met'}'>{'termination right reached' if reached else 'not reached'}</b>.</p>")
    return parts


def _ratio(met: int, measured: int) -> str:
    return "-" if not measured else f"{met} of {measured} ({_esc(pct(Fraction(met, measured)))} %)"


def _requests(c: ContractReport) -> list[str]:
    """The contract's customer requests (#28): per severity the count, each clock's met ratio against its target
    with its median and 90th percentile in business time, and each breach with its ticket and link."""
    r = c.requests
    assert r is not None
    targets = {f.severity: f for f in r.by_severity}
    parts = ["<h3>Customer requests</h3><table><caption>Response and resolution in the contract's support hours"
             "</caption><thead><tr><th>severity</th><th>requests</th><th>first response met</th><th>median</th>"
             "<th>p90</th><th>resolution met</th><th>median</th><th>p90</th></tr></thead><tbody>"]
    for sev, f in targets.items():
        parts.append(f"<tr><td>{_esc(sev)}</td><td>{f.count}</td>"
                     f"<td>{_ratio(f.first_response_met, f.first_response_measured)}</td>"
                     f"<td>{_duration(f.first_response_p50_s)}</td><td>{_duration(f.first_response_p90_s)}</td>"
                     f"<td>{_ratio(f.resolution_met, f.resolution_measured)}</td>"
                     f"<td>{_duration(f.resolution_p50_s)}</td><td>{_duration(f.resolution_p90_s)}</td></tr>")
    parts.append("</tbody></table>")
    if r.breaches:
        parts.append("<table><caption>Requests that missed a target</caption><thead><tr><th>request</th>"
                     "<th>subject</th><th>severity</th><th>clock</th><th>business time</th><th>target</th>"
                     "<th>result</th></tr></thead><tbody>")
        for b in r.breaches:
            ref = (f"<a href='{_esc(b.link)}'>{_esc(b.source)} #{_esc(b.external_id)}</a>" if b.link
                   else f"{_esc(b.source)} #{_esc(b.external_id)}")
            parts.append(f"<tr><td>{ref}</td><td class='text'>{_esc(b.subject)}</td><td>{_esc(b.severity)}</td>"
                         f"<td>{_esc(b.clock.replace('_', ' '))}</td><td>{hms(b.business_s)}</td>"
                         f"<td>{hms(b.target_s)}</td><td>{_verdict(False)}</td></tr>")
        parts.append("</tbody></table>")
    for source, at in r.sources_read:
        when = "never read successfully" if at is None else f"last read {_esc(local_time(at, c.timezone))}"
        parts.append(f"<p class='note'>Requests from {_esc(source)}: {when}; a clock still running is judged up to "
                     "then, the time after it is unknown.</p>")
    return parts


def _objective_rows(t: TargetReport) -> list[tuple[str, str, str, bool | None]]:
    """Every objective the contract sets for this circuit: (objective, promise, measured, met)."""
    rows: list[tuple[str, str, str, bool | None]] = [
        ("availability", f"&ge; {_esc(t.availability.objective_pct)} %", f"{_esc(t.availability.value_pct)} %",
         t.availability.met)]
    for name, dist in (("latency", t.latency), ("response_time", t.response_time)):
        if dist.target_s is not None:
            p = dist.objective.get("percentile")
            p = f"{p:g}" if isinstance(p, (int, float)) else p  # p95, not p95.0
            rows.append((name, f"p{_esc(p)} &le; {_esc(shown_ms(dist.target_s))} ms",
                         f"p{_esc(p)} {_esc(shown_ms(dist.value_s))} ms", dist.met))
    if t.loss.target_pct is not None:
        rows.append(("loss", f"&le; {_esc(t.loss.target_pct)} %", f"{_esc(t.loss.value_pct)} %", t.loss.met))
    if t.jitter.target_s is not None:
        rows.append(("jitter", f"mean &le; {_esc(shown_ms(t.jitter.target_s))} ms",
                     f"mean {_esc(shown_ms(t.jitter.mean_s))} ms", t.jitter.met))
    if t.voice is not None and t.voice.figures.get("mos_target") is not None:
        mean = t.voice.mos_mean
        rows.append(("MOS", f"mean &ge; {_esc(t.voice.figures['mos_target'])}", f"mean {_esc(mean)}",
                     t.voice.figures.get("met")))
    return rows


def _objectives(t: TargetReport, c: ContractReport) -> str:
    """The circuit's objectives, each with its measured figure, met or missed, and the credit it earned (the
    contract's credit lines for this circuit, or for the contract when credits are on the contract's fee)."""
    credited: dict[str, list[str]] = {}
    for line in c.credits.lines:
        if line.scope == t.id or line.scope == "contract" and len(c.targets) == 1:
            credited.setdefault(line.objective, []).append(f"{_esc(line.credit_pct)} %: {_esc(line.amount)} "
                                                           f"{_esc(c.currency)}")
    rows = "".join(f"<tr><td>{name.replace('_', ' ')}</td><td>{promise}</td><td>{measured}</td><td>{_verdict(met)}</td>"
                   f"<td>{'; '.join(credited.get(name.lower(), [])) or '-'}</td></tr>"
                   for name, promise, measured, met in _objective_rows(t))
    return ("<table><thead><tr><th>objective</th><th>promised</th><th>measured</th><th>result</th><th>credit</th>"
            f"</tr></thead><tbody>{rows}</tbody></table>")


def _circuit(t: TargetReport, tz: str, c: ContractReport | None = None) -> list[str]:
    ta = t.availability
    ex = t.excluded
    p95 = t.latency.p95_s
    loss = t.loss.value_pct
    parts = [f"<div class='circuit'><h3>{_esc(t.id)} ({_esc(t.kind)})</h3>",
             f"<img alt='availability chart of {_esc(t.id)}' src='{chart_png(t, float(ta.objective_pct))}'>",
             "<table><thead><tr><th>availability %</th><th>coverage %</th><th>downtime</th><th>maintenance</th>"
             "<th>unknown</th><th>outages</th><th>MTTR</th><th>longest</th><th>p95 RTT ms</th><th>loss %</th></tr></thead>",
             f"<tbody><tr><td>{_esc(ta.value_pct)} {_verdict(ta.met)}</td><td>{_esc(pct(t.coverage))}</td>"
             f"<td>{_duration(t.downtime_s)}</td><td>{_duration(ex.maintenance_s)}</td><td>{_duration(ex.unknown_s)}</td>"
             f"<td>{_esc(t.outages.count)}</td><td>{_duration(t.outages.mttr_s)}</td>"
             f"<td>{_duration(t.outages.longest_s)}</td>"
             f"<td>{_esc(shown_ms(p95))}</td>"
             f"<td>{_esc(loss)}</td></tr></tbody></table>"]
    if c is not None:
        parts.append(_objectives(t, c))
    rt = t.response_time
    if rt.p95_s is not None and rt.p50_s is not None:
        percentile = rt.objective.get("percentile")
        target = "" if rt.target_s is None else f" against p{_esc(percentile)} &le; {_esc(shown_ms(rt.target_s))} ms"
        value = rt.value_s
        parts.append(f"<p>Service response time: p50 {_esc(shown_ms(rt.p50_s))} ms, "
                     f"p95 {_esc(shown_ms(rt.p95_s))} ms"
                     + ("" if value is None or rt.target_s is None else
                        f", p{_esc(percentile)} {_esc(shown_ms(value))} ms{target} {_verdict(rt.met)}")
                     + f" ({_esc(rt.objective.get('samples', ''))} answered checks).</p>")
    reconciled = t.cycles.reconciled
    if reconciled and reconciled.unreconciled_hours:
        parts.append(f"<p class='note'>Maintenance changed after the fact: {reconciled.unreconciled_hours} hour(s) "
                     "keep the windows in force when measured (their raw cycles are past retention).</p>")
    parts.append("</div>")
    items = t.outages.items
    if items:
        parts.append(f"<table><thead><tr><th>{_esc(t.id)}: outage start</th><th>end</th><th>duration</th>"
                     "<th>failed cycles</th><th>last good</th><th>first bad</th><th>cause</th><th>tickets</th></tr></thead><tbody>")
        for o in items:
            ev = o.probe_evidence
            lg, fb = ev.get("last_good") or {}, ev.get("first_bad") or {}
            rtt = f" ({_esc(lg.get('rtt_ms'))} ms)" if lg.get("rtt_ms") is not None else ""
            end = "ongoing" if o.ongoing else local_time(o.end, tz)
            parts.append(f"<tr><td>{_esc(local_time(o.start, tz))}</td><td>{_esc(end)}</td>"
                         f"<td>{_duration(o.duration_s)}</td><td>{_esc(ev.get('failed_cycles'))}</td>"
                         f"<td>{_esc(local_time(lg.get('at'), tz))}{rtt}</td><td>{_esc(local_time(fb.get('at'), tz))}</td>"
                         f"<td class='text'>{_esc(fb.get('reason') or fb.get('cause'))}</td>"
                         f"<td>{_esc(', '.join(map(str, o.tickets)))}</td></tr>")
        parts.append("</tbody></table>")
    return parts


def render_html(report: Report, progress: Callable[[int, int, str], None] | None = None) -> str:
    """The report as one self-contained HTML page (charts inline), laid out for print."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>SLA report {_esc(report.month)}</title>"
             f"<style>{_STYLE}\n{_page_rules(report)}</style></head><body>", *_summary(report)]
    total = report.target_count
    done = 0
    for i, c in enumerate(report.contracts):
        parts.extend(_contract_head(i, c))
        for t in c.targets:
            done += 1
            if progress:
                progress(done, total, t.id)
            parts.extend(_circuit(t, c.timezone, c))
        parts.append("</section>")
    parts.append("</body></html>")
    return "".join(parts)


def render_pdf(html_path: str, pdf_path: str, timeout: float = 120.0) -> None:
    """Print the HTML to PDF with headless Chromium (Debian's chromium); the page size, header and page numbers
    come from the HTML's CSS paged-media rules.

    V8 runs without its JIT (``--js-flags=--jitless``): the shipped unit's ``MemoryDenyWriteExecute=yes``
    forbids writable-and-executable memory, and a JIT-ing V8 then cannot reserve its code range and hangs.
    The report's HTML needs no fast JavaScript (its charts are PNG), so the interpreter is enough.
    ``tests/test_report_layout.py`` prints a PDF under the kernel's own MDWE restriction (PR_SET_MDWE, which
    systemd applies for that setting where the kernel has it).
    """
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise SlawatchError("PDF needs Chromium (apt-get install chromium); HTML, JSON and CSV do not")
    with tempfile.TemporaryDirectory() as profile:
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync", "--no-first-run", "--js-flags=--jitless",
                   f"--user-data-dir={profile}", "--no-pdf-header-footer", "--generate-pdf-document-outline",
                   f"--print-to-pdf={pdf_path}", f"file://{html_path}"]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SlawatchError(f"Chromium did not print the PDF within {timeout:.0f} s") from None
    if proc.returncode != 0 or not os.path.exists(pdf_path):
        raise SlawatchError(f"Chromium could not print the PDF: {proc.stderr.strip()[-300:]}")
