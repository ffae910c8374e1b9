"""Reports: the monthly report (JSON, CSV, HTML, PDF) with the evidence behind each figure, and its schedule.

Owns: building the report document from ``monitor.sla``'s month figures, rendering it, writing and mailing it
on schedule.
May import: ``monitor.sla``, ``monitor.config``, ``monitor.store`` (reading), ``monitor.tickets`` (ticket
ids and the mail sink), ``monitor.units``, ``monitor.errors``.
"""
