"""The ticket ledger: slawatch's own record of every ticket, its timeline and its deliveries.

Events become tickets inside the store transaction that stores the event
(:meth:`Ledger.apply` is the ``on_new_event`` hook of ``SqliteStore.write``),
and every delivery to a sink is an *outbox* row of that same transaction.
So a crash can lose neither an event's ticket nor a ticket's delivery.

Lifecycle, per incident key (``outage:<target>``, ``degradation:<target>``,
``budget:<target>:<month>``, ``breach:<target>:<month>``):

* an event with no open ticket for its key opens one, unless a ticket with
  that key was resolved within the contract's ``ticket_merge_window``, which
  is then reopened (a flap);
* a repeat while the ticket is open is an update on it;
* an outage or degradation ending resolves its ticket with the duration in
  the comment, or only comments when the contract has ``auto_resolve: false``;
* with a contract ``grouping`` rule, outages of several targets starting
  within its window become children of one parent ticket, and only the
  parent goes to the sinks.

Escalation: tier N's sinks get the ticket once it has been open
``escalation[N].after`` without acknowledgement. Acknowledging stops it.

Customer requests (#28) escalate through the same tickets and outbox, one ticket per request and clock
(``request:first_response:<contract>:<source>:<id>``, kind ``customer request``), opened when the clock's
business time reaches the contract's first ``request_escalation`` tier: each tier reached is sent once (the
ticket's tier, written with its outbox rows in one transaction, under the leader's fence), the first response
resolves the response clock's ticket, the resolution the other; a reopened request reopens its ticket, so the
tiers already sent are not sent again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from fractions import Fraction
from typing import Callable

from monitor.config import Config, Contract
from monitor.events import BreachEvent
from monitor.exact import at_most
from monitor.store.base import Fence, RequestRecord, Ticket, TicketStore, TicketTx
from monitor.units import format_duration

__all__ = ["Ledger", "Ticket", "SEVERITY_OF", "REQUEST_KIND", "TicketError", "load_ticket", "list_tickets", "ticket_timeline",
           "ticket_refs", "response_times"]

#: event kind -> (incident key prefix, severity, ticket kind)
SEVERITY_OF = {
    "outage_started": ("outage", "critical", "outage"),
    "degradation_started": ("degradation", "minor", "degradation"),
    "budget_burn": ("budget", "major", "budget burn"),
    "monthly_breach": ("breach", "major", "monthly breach"),
    "monitoring_outage_started": ("monitoring", "critical", "monitoring outage"),
}

#: the kind of the tickets that escalate customer requests (not outages: no acknowledgement polling, no response
#: figures of their own; the requests' figures are the requests' own)
REQUEST_KIND = "customer request"

from monitor.errors import SlawatchError  # noqa: E402


class TicketError(SlawatchError):
    """A ticket command could not be carried out (unknown id, wrong state)."""

    exit_code = 2


def _stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts))


class Ledger:
    """Turns breach events into tickets: deduplicated, grouped, escalated, resolved on recovery."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.time):
        self.config = config
        self.clock = clock
        self.contracts: dict[str, Contract] = {c.id: c for c in config.contracts}
        self.sinks = {s.name: s for s in config.ticket_sinks if s.enabled}

    def reconfigure(self, config: Config) -> None:
        """Use a new config's contracts and sinks from the next event on (a reload)."""
        self.config = config
        self.contracts = {c.id: c for c in config.contracts}
        self.sinks = {s.name: s for s in config.ticket_sinks if s.enabled}

    # -- helpers -------------------------------------------------------------------------
    def _enqueue(self, tx: TicketTx, ticket_id: int, action: str, text: str, at: float,
                 sinks: list[str] | None = None, recipients: list[str] | tuple[str, ...] = (),
                 tier: int | None = None) -> None:
        """Outbox rows for the ticket's sinks: by default, every sink it already reached (by tier)."""
        ticket = tx.ticket(ticket_id)
        if ticket is None or ticket.parent_id is not None:
            return  # a grouped child is delivered through its parent
        contract = self.contracts.get(ticket.contract)
        if sinks is None:
            sinks = []
            for t in (contract.escalation if contract else []):
                if t.tier <= ticket.tier:
                    sinks.extend(t.sinks)
        seq = tx.outbox_count(ticket_id)
        at = min(at, self.clock())  # due at once: an event's own date may lie ahead of this clock
        for sink in dict.fromkeys(sinks):
            if sink not in self.sinks:
                continue
            tx.enqueue(ticket_id, sink, action, text, list(recipients), f"{ticket.uid}:{sink}:{action}:{seq}", at)
            seq += 1

    def _open(self, tx: TicketTx, key: str, contract: Contract, targets: list[str], severity: str,
              kind: str, title: str, at: float, text: str, parent_id: int | None = None) -> int:
        ticket_id = tx.insert_ticket(uuid.uuid4().hex[:16], key, contract.id, targets, severity, kind, title, at,
                                     parent_id)
        tx.note(ticket_id, "opened", text, at)
        self._escalate_ticket(tx, ticket_id, at, text)
        return ticket_id

    # -- events -> tickets ----------------------------------------------------------------
    def apply(self, tx: TicketTx, event: BreachEvent) -> None:
        """The ``on_new_event`` hook: runs inside the transaction that stored ``event``."""
        contract = self.contracts.get(event.contract)
        if contract is None:
            return
        now = self.clock()
        if event.kind in ("outage_ended", "degradation_ended"):
            self._recovered(tx, event, contract, now)
            return
        if event.kind == "monitoring_outage_ended":
            open_ticket = tx.unresolved(f"monitoring:{event.contract}:*")
            if open_ticket is not None:
                start = event.data.get("start") or event.at
                self._resolve(tx, open_ticket.id, f"the reference targets answer again after "
                              f"{format_duration(event.at - start)}; the time in between is recorded as unknown",
                              event.at, "recovered")
            return
        if event.kind not in SEVERITY_OF:
            return
        prefix, severity, kind = SEVERITY_OF[event.kind]
        if event.kind == "budget_burn":
            severity = "major" if event.data.get("severity") == "page" else "minor"
        scope = event.target or "*"
        key = f"{prefix}:{event.contract}:{scope}" + (f":{event.data['month']}" if "month" in event.data else "")
        title = self._title(event, contract)
        text = self._describe(event)
        if event.kind == "outage_started" and event.target:
            text += self._circuit(event, contract)
        existing = tx.unresolved(key)
        if existing is not None:
            tx.note(existing.id, "repeat", text, now)
            self._enqueue(tx, existing.id, "update", text, now)
            return
        recent = tx.resolved_since(key, event.at - contract.ticket_merge_window)
        if recent is not None:
            tx.set_state(recent.id, "open")
            tx.note(recent.id, "reopened", f"reopened within the merge window: {text}", now)
            self._enqueue(tx, recent.id, "reopen", f"Reopened: {text}", now)
            return
        parent_id = None
        if event.kind == "outage_started" and contract.grouping is not None and event.target:
            parent_id = self._group(tx, contract, event, now)
        self._open(tx, key, contract, [event.target] if event.target else [], severity, kind, title, event.at, text,
                   parent_id)

    def _group(self, tx: TicketTx, contract: Contract, event: BreachEvent, now: float) -> int | None:
        rule = contract.grouping
        assert rule is not None and event.target is not None
        key = f"group:{contract.id}"
        parent = tx.unresolved(key)
        if parent is not None and event.at - parent.opened <= rule.window:
            targets = parent.targets + [event.target]
            tx.set_targets(parent.id, targets)
            text = f"{event.target} is down too ({len(targets)} targets of {contract.id} down together)"
            tx.note(parent.id, "grouped", text, now)
            self._enqueue(tx, parent.id, "update", text, now)
            return parent.id
        siblings = tx.open_roots(contract.id, "outage", event.at - rule.window)
        if len(siblings) + 1 < rule.min_targets:
            return None
        targets = [s.targets[0] for s in siblings] + [event.target]
        parent_id = self._open(
            tx, key, contract, targets, "critical", "outage",
            f"{contract.id}: {len(targets)} targets down together", event.at,
            f"{len(targets)} targets of {contract.id} went down within {format_duration(rule.window)}: "
            + ", ".join(targets),
        )
        for s in siblings:
            dropped = tx.drop_pending(s.id)
            if tx.outbox_count(s.id):
                # it already reached a sink: tell the sink where the incident went
                self._enqueue(tx, s.id, "update", f"grouped under slawatch ticket {parent_id}", now)
            tx.set_parent(s.id, parent_id)
            tx.note(s.id, "grouped", f"grouped under ticket {parent_id}"
                    + (f"; {dropped} pending deliveries superseded by the parent" if dropped else ""), now)
        return parent_id

    def _recovered(self, tx: TicketTx, event: BreachEvent, contract: Contract, now: float) -> None:
        prefix = "outage" if event.kind == "outage_ended" else "degradation"
        ticket = tx.unresolved(f"{prefix}:{event.contract}:{event.target}")
        if ticket is None:
            return
        start = event.data.get("start") or ticket.opened
        text = (f"{event.target} recovered at {_stamp(event.at)} after {format_duration(event.at - start)} "
                f"({prefix} from {_stamp(start)})")
        if contract.auto_resolve:
            self._resolve(tx, ticket.id, text, event.at, "recovered")
        else:
            tx.note(ticket.id, "recovered", text + "; left open for a person to resolve", now)
            self._enqueue(tx, ticket.id, "update", text, now)
        if ticket.parent_id is not None:
            if tx.open_children(ticket.parent_id) == 0 and contract.auto_resolve:
                self._resolve(tx, ticket.parent_id, f"all grouped targets recovered; last: {text}", event.at,
                              "recovered")
            else:
                tx.note(ticket.parent_id, "child recovered", text, now)

    def _resolve(self, tx: TicketTx, ticket_id: int, text: str, at: float, kind: str = "resolved") -> None:
        ticket = tx.ticket(ticket_id)
        tx.set_state(ticket_id, "resolved", acknowledged=ticket.acknowledged if ticket else None, resolved=at)
        tx.note(ticket_id, kind, text, at)
        self._enqueue(tx, ticket_id, "resolve", text, at)

    # -- escalation ----------------------------------------------------------------------
    def _escalate_ticket(self, tx: TicketTx, ticket_id: int, now: float, text: str | None = None) -> None:
        ticket = tx.ticket(ticket_id)
        if ticket is None:
            return
        contract = self.contracts.get(ticket.contract)
        if contract is None or ticket.state != "open" or ticket.parent_id is not None or ticket.kind == REQUEST_KIND:
            return
        tier_now = ticket.tier
        for tier in sorted(contract.escalation, key=lambda t: t.tier):
            if tier.tier <= tier_now or now - ticket.opened < tier.after:
                continue
            tx.set_tier(ticket_id, tier.tier)
            tier_now = tier.tier
            body = text or f"Escalated to tier {tier.tier}: unacknowledged for {format_duration(now - ticket.opened)}"
            tx.note(ticket_id, "escalated", f"tier {tier.tier}: {', '.join(tier.sinks)}"
                    + (f" ({', '.join(tier.recipients)})" if tier.recipients else ""), now)
            self._enqueue(tx, ticket_id, "open", f"[{ticket.title}] {body}", now, sinks=tier.sinks,
                          recipients=tier.recipients)

    # -- customer requests (#28) ----------------------------------------------------------------------
    def escalate_requests(self, store: TicketStore, requests: Sequence[RequestRecord], now: float | None = None,
                          fence: Fence | None = None, quiet: bool = False) -> int:
        """Send each request tier its clocks have reached (once), and stop the clocks that stopped; ``requests``
        as freshly read from their source (never from a source that could not be read). ``quiet``: the source's
        first sync, whose backlog reached its tiers before slawatch followed it: they are recorded as reached,
        not sent (no flood of old escalations on the day a source is added). Returns how many tiers were sent."""
        now = self.clock() if now is None else now
        sent = 0
        with store.tickets_tx(fence) as tx:
            for r in requests:
                contract = self.contracts.get(r.contract)
                if contract is None or not contract.request_escalation:
                    continue
                target = contract.response_targets.get(r.severity)  # type: ignore[call-overload]  # a str column
                if target is None:
                    continue
                for clock, limit in (("first_response", target.acknowledge), ("resolution", target.resolve)):
                    sent += self._request_clock(tx, contract, r, clock, limit, now, quiet)
        return sent

    def _request_clock(self, tx: TicketTx, contract: Contract, r: RequestRecord, clock: str, limit: float,
                       now: float, quiet: bool = False) -> int:
        from monitor.sla.business import business_seconds, calendar_for

        key = f"request:{clock}:{contract.id}:{r.source}:{r.external_id}"
        ticket = tx.unresolved(key)
        stopped = r.first_response if clock == "first_response" else r.resolved
        what = "first response" if clock == "first_response" else "resolution"
        if stopped is not None:
            if ticket is not None:
                self._resolve_request(tx, contract, ticket, f"customer request {r.external_id}: {what} at "
                                      f"{_stamp(stopped)}; its escalation stops", stopped)
            return 0
        spent = business_seconds(calendar_for(contract, r.severity), r.opened, now, r.pauses)
        tiers = [(n, t) for n, t in enumerate(contract.request_escalation, 1)
                 if clock in t.clocks and Fraction(spent) * 100 >= Fraction(t.at) * Fraction(limit)]
        if not tiers:
            return 0
        if ticket is None:
            ticket = self._request_ticket(tx, key, contract, r, clock, now)
        sent = 0
        for n, tier in tiers:
            if n <= ticket.tier:
                continue
            tx.set_tier(ticket.id, n)
            contacts = [*tier.provider, *tier.reseller]
            text = (f"Customer request {r.external_id} of {contract.customer} (contract {contract.id}, severity "
                    f"{r.severity}): no {what} after {format_duration(spent)} of support time, {tier.at} % of its "
                    f"{format_duration(limit)} target. Subject: {r.subject}. Opened {_stamp(r.opened)}."
                    + self._request_link(r)
                    + (f"\nprovider: {', '.join(tier.provider)}" if tier.provider else "")
                    + (f"\nreseller: {', '.join(tier.reseller)}" if tier.reseller else ""))
            if quiet:
                tx.note(ticket.id, "escalated", f"tier {n} ({tier.at} %) was reached before slawatch followed "
                        f"{r.source}: recorded, not sent", now)
                continue
            tx.note(ticket.id, "escalated", f"tier {n} ({tier.at} %): {', '.join(tier.sinks)}"
                    + (f" ({', '.join(contacts)})" if contacts else ""), now)
            self._enqueue(tx, ticket.id, "open", text, now, sinks=tier.sinks, recipients=contacts)
            sent += 1
        return sent

    def _request_ticket(self, tx: TicketTx, key: str, contract: Contract, r: RequestRecord, clock: str,
                        now: float) -> Ticket:
        """The clock's ticket: a reopened request's earlier one (its tiers stay sent), else a new one; a sink
        that is the system the request came from comments on the request itself."""
        earlier = tx.resolved_since(key, 0.0)
        if earlier is not None:
            tx.set_state(earlier.id, "open")
            tx.note(earlier.id, "reopened", f"customer request {r.external_id} was reopened", now)
            return tx.ticket(earlier.id) or earlier
        what = "unanswered" if clock == "first_response" else "unresolved"
        ticket_id = tx.insert_ticket(uuid.uuid4().hex[:16], key, contract.id, [], r.severity, REQUEST_KIND,
                                     f"customer request {r.external_id} {what}: {r.subject}"[:200], r.opened, None)
        tx.note(ticket_id, "opened", f"customer request {r.external_id} from {r.source}, {what}", now)
        for sink, external_id in self._request_refs(r):
            tx.add_ref(ticket_id, sink, external_id)
        made = tx.ticket(ticket_id)
        assert made is not None
        return made

    def _request_refs(self, r: RequestRecord) -> list[tuple[str, str]]:
        """(sink, id) for each RT sink on the same RT as the request's source: the request's own ticket there."""
        source = next((s for s in self.config.request_sources if s.name == r.source), None)
        if source is None:
            return []
        url = str(source.url).rstrip("/")
        return [(name, r.external_id) for name, s in self.sinks.items()
                if getattr(s, "type", None) == "rt" and str(getattr(s, "url", "")).rstrip("/") == url]

    def _request_link(self, r: RequestRecord) -> str:
        source = next((s for s in self.config.request_sources if s.name == r.source), None)
        if source is None or source.type != "rt":
            return ""
        return f"\nrequest: {str(source.url).rstrip('/')}/Ticket/Display.html?id={r.external_id}"

    def _resolve_request(self, tx: TicketTx, contract: Contract, ticket: Ticket, text: str, at: float) -> None:
        """Resolve a request clock's ticket, telling every sink of the tiers it reached."""
        tx.set_state(ticket.id, "resolved", resolved=at)
        tx.note(ticket.id, "resolved", text, at)
        if tx.outbox_count(ticket.id) == 0:
            return  # its tiers were only recorded (a first sync's backlog): nobody heard of it, nobody is told
        sinks = [s for n, t in enumerate(contract.request_escalation, 1) if n <= ticket.tier for s in t.sinks]
        self._enqueue(tx, ticket.id, "resolve", text, at, sinks=sinks)

    def escalate(self, store: TicketStore, now: float | None = None, fence: Fence | None = None) -> None:
        """Move every open, unacknowledged ticket up the tiers its age has reached (under the cluster leader's
        ``fence``: FencedError when its term is over)."""
        now = self.clock() if now is None else now
        with store.tickets_tx(fence) as tx:
            for ticket_id in tx.open_root_ids():
                self._escalate_ticket(tx, ticket_id, now)

    # -- people ---------------------------------------------------------------------------
    @staticmethod
    def _for_update(tx: TicketTx, ticket_id: int) -> Ticket:
        ticket = tx.ticket(ticket_id)
        if ticket is None:
            raise TicketError(f"no ticket {ticket_id}")
        return ticket

    def acknowledge(self, store: TicketStore, ticket_id: int, by: str, now: float | None = None,
                    fence: Fence | None = None) -> Ticket:
        """Acknowledge the ticket (stops its escalation), noting who did; returns the ticket as stored. A poll by
        the cluster's leader presents its ``fence``."""
        now = self.clock() if now is None else now
        with store.tickets_tx(fence) as tx:
            ticket = self._for_update(tx, ticket_id)
            if ticket.state == "open":
                tx.set_state(ticket_id, "acknowledged", acknowledged=now)
                tx.note(ticket_id, "acknowledged", f"acknowledged by {by}", now)
                self._enqueue(tx, ticket_id, "update", f"Acknowledged by {by}", now)
            elif ticket.state == "resolved":
                raise TicketError(f"ticket {ticket_id} is already resolved")
        return load_ticket(store, ticket_id)

    def resolve(self, store: TicketStore, ticket_id: int, by: str, now: float | None = None) -> Ticket:
        """Resolve the ticket by hand, noting who did; returns the ticket as stored."""
        now = self.clock() if now is None else now
        with store.tickets_tx() as tx:
            ticket = self._for_update(tx, ticket_id)
            if ticket.state == "resolved":
                raise TicketError(f"ticket {ticket_id} is already resolved")
            self._resolve(tx, ticket_id, f"resolved by {by}", now)
        return load_ticket(store, ticket_id)

    # -- text -------------------------------------------------------------------------------
    @staticmethod
    def _title(event: BreachEvent, contract: Contract) -> str:
        who = event.target or contract.id
        return {
            "outage_started": f"{who} is down",
            "degradation_started": f"{who} is degraded",
            "budget_burn": f"{who}: error budget burning {event.data.get('burn_rate', '?')}x",
            "monthly_breach": f"{who}: {event.data.get('objective', 'objective')} objective breached for {event.data.get('month')}",
            "monitoring_outage_started": "monitoring outage: slawatch cannot reach its reference targets",
        }.get(event.kind, f"{who}: {event.kind}")

    def _circuit(self, event: BreachEvent, contract: Contract) -> str:
        """What a NOC engineer acts on: the customer, the circuit and its address, the first bad cycle and its
        cause, and the target's dashboard."""
        target = self.config.target(event.target) if event.target else None
        lines = [f"customer: {contract.customer} (contract {contract.id}, provider {contract.provider})",
                 f"circuit: {event.target}" + (f" ({target.kind})" if target else "")]
        if target is not None:
            lines.append(f"address: {target.address}")
            lines += [f"{k}: {v}" for k, v in sorted(target.labels.items())]
        lines.append(f"first bad cycle: {_stamp(event.data.get('start') or event.at)}"
                     + (f", cause: {event.data['cause']}" if event.data.get("cause") else ""))
        if self.config.dashboard_url:
            lines.append("dashboard: " + self.config.dashboard_url.replace("{target}", event.target or "")
                         .replace("{contract}", contract.id))
        if self.config.report_url:  # the month the breach began in, in the contract's zone
            from datetime import datetime
            from zoneinfo import ZoneInfo

            month = datetime.fromtimestamp(event.data.get("start") or event.at, ZoneInfo(contract.timezone))
            lines.append("report: " + self.config.report_url.replace("{contract}", contract.id)
                         .replace("{month}", month.strftime("%Y-%m")))
        return "\n\n" + "\n".join(lines)

    @staticmethod
    def _describe(event: BreachEvent) -> str:
        if event.kind == "outage_started":
            cause = event.data.get("cause")
            return (f"{event.target} down since {_stamp(event.at)} (dated from the first failed probe cycle)"
                    + (f"; cause: {cause}" if cause else ""))
        if event.kind == "degradation_started":
            cause = event.data.get("cause")
            return (f"{event.target} outside its quality objective since {_stamp(event.at)}"
                    + (f"; cause: {cause}" if cause else ""))
        if event.kind == "budget_burn":
            d = event.data
            return (f"error budget of {event.target} for {d['month']} burning at {d['burn_rate']}x over "
                    f"{format_duration(d['window_s'])} ({d['severity']})")
        if event.kind == "monitoring_outage_started":
            return (f"the reference targets ({', '.join(event.data.get('references', []))}) failed together at "
                    f"{_stamp(event.at)}: the monitoring host is cut off. Customer failures are recorded as unknown "
                    "time, not as outages, until they answer again.")
        if event.kind == "monthly_breach":
            d = event.data
            return (f"{event.target}: downtime {d.get('downtime_s')} s exceeds this month's budget of "
                    f"{d.get('budget_s')} s ({d.get('objective_pct')} %)")
        return event.kind


# --------------------------------------------------------------------------- reads


def load_ticket(store: TicketStore, ticket_id: int) -> Ticket:
    """The ticket ``ticket_id``; an error naming it when it does not exist."""
    ticket = store.ticket(ticket_id)
    if ticket is None:
        raise TicketError(f"no ticket {ticket_id}")
    return ticket


def list_tickets(store: TicketStore, *, contract: str | None = None, state: str | None = None, since: float | None = None,
                 until: float | None = None) -> list[Ticket]:
    """Tickets, newest first, by contract, state and opening time."""
    return store.tickets(contract=contract, state=state, since=since, until=until)


def ticket_timeline(store: TicketStore, ticket_id: int) -> list[tuple[float, str, str]]:
    """A ticket's notes in time order: (at, kind, text)."""
    return store.ticket_timeline(ticket_id)


def ticket_refs(store: TicketStore, ticket_id: int) -> dict[str, str]:
    """A ticket's external ids, by sink."""
    return store.ticket_refs(ticket_id)


def response_times(ticket: Ticket, contract: Contract) -> dict:
    """Time to acknowledge and to resolve, and whether each met the contract's target for the severity."""
    target = contract.response_targets.get(ticket.severity)  # type: ignore[call-overload]  # a str column
    ack = None if ticket.acknowledged is None else ticket.acknowledged - ticket.opened
    res = None if ticket.resolved is None else ticket.resolved - ticket.opened
    return {
        "severity": ticket.severity,
        "acknowledge_s": ack,
        "resolve_s": res,
        "acknowledge_target_s": target.acknowledge if target else None,
        "resolve_target_s": target.resolve if target else None,
        # the one rule for a response target (the report's and the exporter's figures use this): at it is met
        "acknowledge_met": None if target is None or ack is None else at_most(ack, target.acknowledge),
        "resolve_met": None if target is None or res is None else at_most(res, target.resolve),
    }
