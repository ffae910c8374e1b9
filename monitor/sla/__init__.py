"""SLA: the pure engine and the month's figures.

Owns: intervals, availability and budgets (``availability``), calendar periods in a contract's zone,
maintenance windows, rollups and their sketches, the E-model, voice windows, the live evaluator, the monthly
figures, maintenance reconciliation and credits. The pure core (intervals, availability, periods, credits,
emodel, sketch, timeline, maintenance) takes an explicit clock and is type-checked with mypy's strict flags.
May import (checked: pyproject.toml's import-linter layers): ``monitor.store`` (to read a month),
``monitor.config``, ``probes`` (the samples' types), and the bottom layer (``monitor.units``, ``errors``,
``events``, ``exact``). Never measure, cluster, tickets or the exporter; ``reconcile`` still reaches into
``monitor.measure`` for the cycle-to-rollup rule (an ignored import in the contract, to move here).

Time: inside the engine every instant and duration is integer UTC milliseconds (exact sums). Probes, the state
machine and the store keep float UTC seconds, as clocks give them. The conversions are at the engine's edges,
each in one place: store records to intervals in ``timeline``, a probe cycle to its rollup in
``monitor.sla.cycles.cycle_figures``, and back to seconds where figures leave (reports, events, metrics).
Maintenance is expanded once per month and shared (``maintenance.MaintenanceCalendar``).
"""
