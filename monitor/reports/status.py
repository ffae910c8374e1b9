"""The circuits' state now, for `slawatch status` and the customer portal: per target its state and since when,
its month-to-date availability and error budget (the SLA evaluator's), its freshest RTT and loss, its open outage
ticket, and for a multi-site target each site's view."""

from __future__ import annotations

from typing import Any

from monitor.errors import StoreError

__all__ = ["circuit_rows"]


def circuit_rows(config: Any, store: Any, now: float, contract: str | None = None) -> list[dict[str, Any]]:
    """One row per target (of ``contract``, or all), in config order."""
    from monitor.config.sites import unit_id
    from monitor.sla.evaluator import SlaEvaluator

    targets = [t for t in config.targets if contract is None or t.contract == contract]
    units = None if contract is None else [u for t in targets for u in [t.id, *(unit_id(t.id, s) for s in
                                                                              (t.vantage.sites if t.vantage else ()))]]
    states = store.load_states(units)
    last = store.last_cycles()
    # where the last cycle carries no RTT (another probe's), the freshest one that does, of the last minutes
    intervals = {u: t.interval for t in targets for u in [t.id, *(unit_id(t.id, s) for s in
                                                               (t.vantage.sites if t.vantage else ()))]}
    measured = {u: next((c for c in reversed(store.cycles(u, cy.started - 3 * intervals[u], cy.started + 1))
                         if c.sent), None)
                for u, cy in last.items() if not cy.sent and u in intervals}
    coverage = {t: (s.tracker.get("first_cycle"), s.tracker.get("last_cycle")) for t, s in states.items()}
    # one contract's page evaluates that contract's targets only (not all 10,000 of a large config)
    scope = config if contract is None else config.model_copy(
        update={"targets": targets, "contracts": [c for c in config.contracts if c.id == contract]})
    try:
        sla, _ = SlaEvaluator(scope, store).evaluate(now, coverage, windows=False)
    except StoreError:
        sla = {}
    open_tickets = store.open_incidents("outage:")
    rows: list[dict[str, Any]] = []

    def cycle_figures(cy: Any, measured: Any = None) -> dict[str, Any]:
        """The last cycle's time; RTT and loss from the freshest cycle that measured them (``measured``: a
        target probed by ICMP and SNMP has SNMP cycles, without either, as often as ICMP ones)."""
        m = measured or cy
        return {"last_cycle": cy.started if cy else None, "rtt_median": m.rtt_median if m else None,
                "loss": (None if not m or not m.sent else (m.sent - (m.received or 0)) / m.sent)}

    for t in targets:
        st = states.get(t.id)
        s = sla.get(t.id)
        mtd = s.mtd if s else None
        row: dict[str, Any] = {
            "target": t.id, "contract": t.contract, "kind": t.kind,
            "state": st.state if st else "unknown",
            "since": st.since if st else None,
            "month_availability": None if mtd is None or mtd.so_far.ratio is None else float(mtd.so_far.ratio),
            "error_budget_left": None if mtd is None else mtd.remaining_ratio,
            **cycle_figures(last.get(t.id), measured.get(t.id)),
            "open_ticket": open_tickets.get(f"outage:{t.contract}:{t.id}"),
        }
        if t.vantage is not None and len(t.vantage.sites) > 1:
            # a multi-site target's cycles are its sites' units': each site's, and the freshest as the target's
            sites = {}
            for site in t.vantage.sites:
                unit = states.get(unit_id(t.id, site))
                sites[site] = {"state": unit.state if unit else "unknown",
                               **cycle_figures(last.get(unit_id(t.id, site)), measured.get(unit_id(t.id, site)))}
            row["sites"] = sites
            fresh = [v for v in sites.values() if v["last_cycle"] is not None]
            if fresh:
                newest = max(fresh, key=lambda v: v["last_cycle"])
                row.update({k: newest[k] for k in ("last_cycle", "rtt_median", "loss")})
        rows.append(row)
    return rows
