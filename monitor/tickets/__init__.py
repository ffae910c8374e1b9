"""Tickets: breaches become tickets in the systems a NOC already uses.

Owns: the ledger (deduplicated, grouped, escalated, resolved on recovery: ``ledger``), the outbox's deliverer
(retries, acknowledgement polling, alert refresh: ``delivery``), one module per sink with its settings
(``sinks/``), and the tickets' metrics collector (``metrics``).
May import: ``monitor.config``, ``monitor.store`` (the ticket tables through its Protocol), ``monitor.events``,
``monitor.units``, ``monitor.errors``.
"""
