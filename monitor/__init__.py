"""slawatch: network service monitoring and SLA measurement.

The core package, one subpackage per stage of the path a measurement takes (``probes/``, beside this
package, makes the results):

* ``measure``: a cycle's results become a verdict, a state, records and events; the live figures;
* ``sla``: the pure engine (intervals, availability, periods, credits, the E-model), rollups, the month;
* ``tickets``: the ledger, the outbox and the sinks;
* ``metrics``: what Prometheus scrapes (the per-target renderer, the collectors, the exporter's HTTP server);
* ``reports``: the monthly report and its schedule;
* ``cluster``: membership, leases, multi-site consensus, the shared config;
* ``config``: typed models, the loader, MIB names; ``store``: storage behind its Protocol (nothing else
  touches SQL or a connection).

At the top: ``daemon`` (wires the stages together), ``cli``, ``errors`` (one tree under SlawatchError),
``logs``, ``units``, ``sdnotify``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
