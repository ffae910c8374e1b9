"""Measure: a probe cycle's results become a verdict, a state, records and events.

Owns: the cycle (``cycle``), the state machine (``state``), the live figures the exporter reads (``live``,
written only through its own methods), ingestion into records, rollups and unknown time (``ingest``), the
scheduler, the canary, SNMP counters and traps, breach events, and the batched store writer.
May import: ``probes``, ``monitor.config``, ``monitor.sla`` (rollups, maintenance, the E-model), ``monitor.store``
(its records and Protocol), ``monitor.errors``, ``monitor.units``.
"""
