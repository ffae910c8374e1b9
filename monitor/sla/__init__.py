"""SLA: the pure engine and the month's figures.

Owns: intervals, availability and budgets (``availability``), calendar periods in a contract's zone,
maintenance windows, rollups and their sketches, the E-model, voice windows, the live evaluator, the monthly
figures, maintenance reconciliation and credits. The pure core (intervals, availability, periods, credits,
emodel, sketch, timeline, maintenance) takes an explicit clock and is type-checked with mypy's strict flags.
May import: ``monitor.config``, ``monitor.store`` (to read a month), ``monitor.units``, ``monitor.errors``;
``monitor.measure.events`` for the breach events it raises, ``monitor.measure.state`` for GAP_FACTOR. Never
probes, tickets or the exporter.

Time: inside the engine every instant and duration is integer UTC milliseconds (exact sums). Probes, the state
machine and the store keep float UTC seconds, as clocks give them. The conversions are at the engine's edges,
each in one place: store records to intervals in ``timeline``, a probe cycle to its rollup in
``monitor.measure.ingest.rollup_args``, and back to seconds where figures leave (reports, events, metrics).
Maintenance is expanded once per month and shared (``maintenance.MaintenanceCalendar``).
"""
