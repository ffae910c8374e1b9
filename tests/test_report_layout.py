"""The report as people will see it: printed by the real Chromium to PDF, looked at as text per page (pdftotext)
and as pictures (pdftoppm), and the HTML as a screenshot."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import datetime, timezone

import pytest

from monitor.config import parse_config
from monitor.sla.periods import month_period
from monitor.reports.report import build_report
from monitor.reports.html import hms, local_time, render_html, render_pdf
from monitor.store import Batch, OutageRecord, StateRecord

pytestmark = pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("pdftoppm")),
                                reason="needs chromium and poppler-utils (scripts/dev-setup installs both)")

A4 = (595, 842)  # points, rounded
LETTER = (612, 792)


def ts(*args) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


def _contract(cid, customer, tz, locale):
    return {"id": cid, "customer": customer, "provider": "ExampleTel", "timezone": tz, "locale": locale,
            "monthly_fee": "1200.00", "currency": "EUR", "objectives": {"availability": "99.9%"},
            "credit_tiers": [{"below": "99.9%", "credit": "5%"}, {"below": "99.0%", "credit": "10%"}],
            "chronic": {"missed_months": 3, "window_months": 6}}


@pytest.fixture
def printed(every_store, tmp_path):
    cfg = parse_config({
        "contracts": [_contract("c1", "Reseller Alliance", "Europe/Berlin", "de_DE"),
                      _contract("c2", "Harbour Freight Inc", "America/New_York", "en_US")],
        "targets": [{"id": f"{c}-t{i}", "contract": c, "kind": "internet", "address": "127.0.0.1", "interval": "30s"}
                    for c, n in (("c1", 5), ("c2", 2)) for i in range(1, n + 1)],
    })
    store = every_store()
    batch = Batch()
    for t in cfg.targets:
        p = month_period(2026, 11, "Europe/Berlin" if t.contract == "c1" else "America/New_York")
        first, last = p.start_ms / 1000, p.end_ms / 1000 - 30
        batch.states[t.id] = StateRecord(t.id, "up", first, last, {"first_cycle": first, "last_cycle": last})
    start = ts(2026, 11, 10, 10)  # 11:00 in Berlin (CET), 05:00 in New York (EST)
    for target, contract in (("c1-t2", "c1"), ("c2-t1", "c2")):
        batch.outages.append(OutageRecord(target, contract, "down", start, start + 10_800.25, {
            "failed_cycles": 360, "last_good": {"at": start - 30, "rtt_ms": 12.5},
            "first_bad": {"at": start, "reason": "no reply to 3 echo requests"}}))
    store.write(batch)
    report = build_report(store, cfg, "2026-11", now=ts(2026, 12, 5, 6))
    html = tmp_path / "r.html"
    html.write_text(render_html(report))
    pdf = tmp_path / "r.pdf"
    render_pdf(str(html), str(pdf))
    return report, html, pdf, tmp_path


def _pages(pdf) -> list[str]:
    """Each page's text in reading order, whitespace collapsed (a table cell may wrap)."""
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return [" ".join(page.split()) for page in text.split("\f")[:-1]]


def _sizes(pdf) -> list[tuple[int, int]]:
    info = subprocess.run(["pdfinfo", "-f", "1", "-l", "999", str(pdf)], capture_output=True, text=True, check=True).stdout
    return [(round(float(w)), round(float(h))) for w, h in re.findall(r"Page\s+\d+ size:\s+([\d.]+) x ([\d.]+) pts", info)]


def test_summary_page_first_then_each_contract_on_its_own_paper(printed):
    report, _, pdf, _ = printed
    pages = _pages(pdf)
    sizes = _sizes(pdf)
    assert len(pages) == len(sizes) >= 3
    summary = pages[0]
    # the summary: every contract's availability, result, coverage, credit with its status, termination status
    for c in report.contracts:
        assert c.customer in summary and c.availability.value_pct in summary
        assert f"{c.credits.total} EUR" in summary
    assert "Summary" in summary and "not reached (1 of 3 months)" in summary and "final" in summary
    assert "c1-t1 (internet)" not in summary  # circuits come after the summary
    # German customer on A4, the US one on Letter; the summary on the first contract's paper
    c2_first = next(i for i, p in enumerate(pages) if "c2: Harbour Freight Inc" in p)
    assert sizes[0] == A4 and all(s == A4 for s in sizes[1:c2_first])
    assert all(s == LETTER for s in sizes[c2_first:])


def test_every_page_has_its_number_and_a_header(printed):
    _, _, pdf, _ = printed
    pages = _pages(pdf)
    n = len(pages)
    for i, page in enumerate(pages, 1):
        assert f"page {i} of {n}" in page
    c2_first = next(i for i, p in enumerate(pages) if "c2: Harbour Freight Inc" in p)
    for page in pages[1:c2_first]:
        assert "Reseller Alliance / ExampleTel" in page and "2026-11-01 00:00:00 CET" in page
    for page in pages[c2_first:]:
        assert "Harbour Freight Inc / ExampleTel" in page and "generated 2026-12-05 01:00:00 EST" in page


def test_times_are_local_to_the_second_and_durations_read_as_h_mm_ss(printed):
    _, _, pdf, _ = printed
    text = "".join(_pages(pdf))
    assert "2026-11-10 11:00:00 CET" in text and "2026-11-10 05:00:00 EST" in text  # the outage's start, each zone
    assert "2026-11-10 10:59:30 CET" in text  # its last good cycle, in the same zone as the row
    assert "3:00:00 (10800.25 s)" in text
    assert "no reply to 3 echo requests" in text  # the outage's cause
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:", text)  # no raw ISO stamps
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", text)  # no fractions of a second in a timestamp


def test_no_heading_is_left_alone_at_a_page_end(printed):
    _, _, pdf, _ = printed
    for page in _pages(pdf):
        for heading in re.findall(r"(c\d-t\d) \(internet\)", page):
            # the circuit's figures (their table's MTTR column) are on the same page as its heading
            after = page[page.index(f"{heading} (internet)"):]
            assert "MTTR" in after, f"{heading}'s heading is orphaned"


def test_pages_look_like_pages(printed):
    """pdftoppm draws each page; the first is the summary's: A4-shaped, mostly white, with text on it."""
    import matplotlib.image

    _, html, pdf, tmp = printed
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(pdf), str(tmp / "page")], check=True)
    pngs = sorted(tmp.glob("page-*.png"))
    assert len(pngs) == len(_sizes(pdf))
    first = matplotlib.image.imread(pngs[0])
    h, w = first.shape[:2]
    assert abs(h / w - 842 / 595) < 0.02
    ink = (first[:, :, :3].mean(axis=2) < 0.6).mean()
    assert 0.005 < ink < 0.3
    # a circuit's page shows its chart: green (met days) and red (the outage's day) pixels
    page = next(p for p, text in zip(pngs, _pages(pdf)) if "c1-t2 (internet)" in text)
    pixels = (matplotlib.image.imread(page)[:, :, :3] * 255).round().astype(int)
    greens = ((abs(pixels[:, :, 0] - 39) < 30) & (abs(pixels[:, :, 1] - 174) < 30) & (abs(pixels[:, :, 2] - 96) < 30))
    reds = ((abs(pixels[:, :, 0] - 192) < 30) & (abs(pixels[:, :, 1] - 57) < 30) & (abs(pixels[:, :, 2] - 43) < 30))
    assert greens.sum() > 50 and reds.sum() > 2
    # the HTML as a browser shows it
    shot = tmp / "shot.png"
    subprocess.run([shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--js-flags=--jitless", f"--user-data-dir={tmp / 'profile'}", "--window-size=1000,1400",
                    f"--screenshot={shot}", f"file://{html}"], capture_output=True, timeout=120, check=True)
    screen = matplotlib.image.imread(shot)
    assert screen.shape[:2] == (1400, 1000) and 0.005 < (screen[:, :, :3].mean(axis=2) < 0.6).mean() < 0.5


def test_local_time_and_hms_formats():
    assert local_time("2026-03-29T00:59:59.999+00:00", "Europe/Berlin") == "2026-03-29 01:59:59 CET"
    assert local_time(ts(2026, 3, 29, 1), "Europe/Berlin") == "2026-03-29 03:00:00 CEST"  # the DST change
    assert local_time(None, "UTC") is None
    assert hms(0) == "0:00:00" and hms(100_000) == "1 d 3:46:40"
    # #27: rounded half up, not floored (119.999 s showed as 0:01:59)
    assert hms(59.999) == "0:01:00" and hms(119.999) == "0:02:00" and hms(0.5) == "0:00:01" and hms(0.49) == "0:00:00"
