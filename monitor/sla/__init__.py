"""SLA: the pure engine and the month's figures.

Owns: intervals, availability and budgets (``availability``), calendar periods in a contract's zone,
maintenance windows, rollups and their sketches, the E-model, voice windows, the live evaluator, the monthly
figures, maintenance reconciliation and credits. The pure core (intervals, availability, periods, credits,
emodel, sketch) takes an explicit clock and is type-checked with mypy's strict flags.
May import: ``monitor.config``, ``monitor.store`` (to read a month), ``monitor.units``, ``monitor.errors``;
``monitor.measure.events`` for the breach events it raises. Never probes, tickets or the exporter.
"""
