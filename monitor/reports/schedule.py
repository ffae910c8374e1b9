"""The daemon's monthly report run: the previous month's reports on the configured day, caught up at start.

A month's run is done when its JSON report exists in ``directory/<month>/``,
so a missed run (the daemon was down on the day) is made at the next start.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

from monitor.config import Config
from monitor.sla.periods import local_to_ms

__all__ = ["ReportSchedule", "write_reports"]

log = logging.getLogger("slawatch.reports")


def write_reports(store, config: Config, month: str, directory: Path, formats: list[str], now: float,
                  contract: str | None = None, progress=None) -> list[Path]:
    """Write a month's report in each format to ``directory`` atomically; returns the paths."""
    from monitor.reports.report import build_report, render_csv, to_json
    from monitor.reports.html import render_html, render_pdf

    report = build_report(store, config, month, now=now, contract_id=contract, progress=progress)
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"slawatch-report-{month}" if contract is None else directory / f"slawatch-report-{month}-{contract}"
    written = []
    html_path = stem.with_suffix(".html")
    for fmt in sorted(formats, key=lambda f: f == "json"):  # JSON last: it marks the run as done
        path = stem.with_suffix(f".{fmt}")
        tmp = path.with_suffix(path.suffix + ".tmp")
        if fmt == "json":
            tmp.write_text(to_json(report))
        elif fmt == "csv":
            tmp.write_text(render_csv(report))
        elif fmt == "html":
            tmp.write_text(render_html(report))
        elif fmt == "pdf":
            if not html_path.exists():
                html_path.write_text(render_html(report))
            render_pdf(str(html_path.resolve()), str(tmp.resolve()))
        os.replace(tmp, path)
        written.append(path)
    return written


class ReportSchedule:
    """Makes the previous month's reports on the configured day and time (and mails them)."""

    def __init__(self, config: Config, store, clock: Callable[[], float]):
        self.config = config
        self.store = store
        self.clock = clock
        self.cfg = config.reports

    def due_month(self, now: float) -> str | None:
        """The previous month, once this month's run time has passed and its report is not there yet."""
        if self.cfg is None or not self.cfg.enabled:
            return None
        tz = self.cfg.timezone
        local = datetime.fromtimestamp(now, ZoneInfo(tz))
        hour, minute = (int(x) for x in self.cfg.at.split(":"))
        run_at = local_to_ms(datetime(local.year, local.month, self.cfg.day, hour, minute), tz) / 1000
        if now < run_at:
            return None
        year, month = (local.year - 1, 12) if local.month == 1 else (local.year, local.month - 1)
        label = f"{year:04d}-{month:02d}"
        if (Path(self.cfg.directory) / label / f"slawatch-report-{label}.json").exists():
            return None
        return label

    def run_pending(self, now: float | None = None) -> list[Path]:
        """Write (and mail) the previous month's reports if they are due and not written yet; returns the files
        written."""
        now = self.clock() if now is None else now
        month = self.due_month(now)
        cfg = self.cfg
        if month is None or cfg is None:
            return []
        paths = write_reports(self.store, self.config, month, Path(cfg.directory) / month, list(cfg.formats), now)
        log.info("monthly reports for %s written: %s", month, ", ".join(p.name for p in paths))
        if cfg.mail_sink:
            self._mail(month, paths, cfg.mail_sink)
        return paths

    def _mail(self, month: str, paths: list[Path], sink_name: str) -> None:
        from monitor.tickets.sinks import SinkError, send_mail
        from monitor.tickets.sinks.email import EmailSinkSettings

        sink = next(s for s in self.config.ticket_sinks if s.name == sink_name)
        if not isinstance(sink, EmailSinkSettings):  # the config's check: mail_sink names an email sink
            log.error("mailing the %s reports: sink %s is not an email sink", month, sink_name)
            return
        msg = EmailMessage()
        msg["From"], msg["To"] = sink.sender, ", ".join(sink.to)
        msg["Subject"] = f"[slawatch] SLA and credit reports for {month}"
        msg.set_content(f"The monthly SLA and uptime-credit reports for {month} are attached.\n")
        types = {".json": ("application", "json"), ".csv": ("text", "csv"), ".html": ("text", "html"), ".pdf": ("application", "pdf")}
        for p in paths:
            main, sub = types[p.suffix]
            msg.add_attachment(p.read_bytes(), maintype=main, subtype=sub, filename=p.name)
        try:
            send_mail(sink, msg)
        except SinkError as exc:
            log.error("mailing the %s reports failed: %s", month, exc)
