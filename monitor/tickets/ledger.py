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
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Callable

from ..config import Config, Contract
from ..events import BreachEvent
from ..units import format_duration

__all__ = ["Ledger", "Ticket", "SEVERITY_OF", "TicketError", "load_ticket", "list_tickets", "ticket_timeline",
           "ticket_refs", "response_times"]

#: event kind -> (incident key prefix, severity, ticket kind)
SEVERITY_OF = {
    "outage_started": ("outage", "critical", "outage"),
    "degradation_started": ("degradation", "minor", "degradation"),
    "budget_burn": ("budget", "major", "budget burn"),
    "monthly_breach": ("breach", "major", "monthly breach"),
    "monitoring_outage_started": ("monitoring", "critical", "monitoring outage"),
}

from ..errors import SlawatchError  # noqa: E402


class TicketError(SlawatchError):
    """A ticket command could not be carried out (unknown id, wrong state)."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class Ticket:
    id: int
    uid: str
    incident_key: str
    contract: str
    targets: list[str]
    severity: str
    kind: str
    state: str
    title: str
    opened: float
    acknowledged: float | None
    resolved: float | None
    tier: int
    parent_id: int | None
    updated: float


def _ticket(row: sqlite3.Row) -> Ticket:
    return Ticket(row["id"], row["uid"], row["incident_key"], row["contract"], json.loads(row["targets"]),
                  row["severity"], row["kind"], row["state"], row["title"], row["opened"], row["acknowledged"],
                  row["resolved"], row["tier"], row["parent_id"], row["updated"])


def _stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts))


class Ledger:
    def __init__(self, config: Config, clock: Callable[[], float] = time.time):
        self.config = config
        self.clock = clock
        self.contracts: dict[str, Contract] = {c.id: c for c in config.contracts}
        self.sinks = {s.name: s for s in config.ticket_sinks if s.enabled}

    def reconfigure(self, config: Config) -> None:
        self.config = config
        self.contracts = {c.id: c for c in config.contracts}
        self.sinks = {s.name: s for s in config.ticket_sinks if s.enabled}

    # -- helpers -------------------------------------------------------------------------
    def _note(self, db: sqlite3.Connection, ticket_id: int, kind: str, text: str, at: float) -> None:
        db.execute("INSERT INTO ticket_events (ticket_id, at, kind, text) VALUES (?,?,?,?)", (ticket_id, at, kind, text))
        db.execute("UPDATE tickets SET updated = ? WHERE id = ?", (at, ticket_id))

    def _enqueue(self, db: sqlite3.Connection, ticket_id: int, action: str, text: str, at: float,
                 sinks: list[str] | None = None, recipients: list[str] = (), tier: int | None = None) -> None:
        """Outbox rows for the ticket's sinks: by default, every sink it already reached (by tier)."""
        row = db.execute("SELECT uid, contract, tier, parent_id FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
        if row["parent_id"] is not None:
            return  # a grouped child is delivered through its parent
        contract = self.contracts.get(row["contract"])
        if sinks is None:
            sinks = []
            for t in (contract.escalation if contract else []):
                if t.tier <= row["tier"]:
                    sinks.extend(t.sinks)
        seq = db.execute("SELECT COUNT(*) FROM outbox WHERE ticket_id = ?", (ticket_id,)).fetchone()[0]
        at = min(at, self.clock())  # due at once: an event's own date may lie ahead of this clock
        for sink in dict.fromkeys(sinks):
            if sink not in self.sinks:
                continue
            key = f"{row['uid']}:{sink}:{action}:{seq}"
            db.execute(
                "INSERT OR IGNORE INTO outbox (ticket_id, sink, action, text, recipients, idempotency_key, created,"
                " next_attempt) VALUES (?,?,?,?,?,?,?,?)",
                (ticket_id, sink, action, text, json.dumps(list(recipients)), key, at, at),
            )
            seq += 1

    def _open(self, db: sqlite3.Connection, key: str, contract: Contract, targets: list[str], severity: str,
              kind: str, title: str, at: float, text: str, parent_id: int | None = None) -> int:
        cur = db.execute(
            "INSERT INTO tickets (uid, incident_key, contract, targets, severity, kind, state, title, opened, tier,"
            " parent_id, updated) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (uuid.uuid4().hex[:16], key, contract.id, json.dumps(targets), severity, kind, "open", title, at, 0,
             parent_id, at),
        )
        ticket_id = int(cur.lastrowid)
        self._note(db, ticket_id, "opened", text, at)
        self._escalate_ticket(db, ticket_id, at, text)
        return ticket_id

    # -- events -> tickets ----------------------------------------------------------------
    def apply(self, db: sqlite3.Connection, event: BreachEvent) -> None:
        """The ``on_new_event`` hook: runs inside the transaction that stored ``event``."""
        contract = self.contracts.get(event.contract)
        if contract is None:
            return
        now = self.clock()
        db.row_factory = sqlite3.Row
        if event.kind in ("outage_ended", "degradation_ended"):
            self._recovered(db, event, contract, now)
            return
        if event.kind == "monitoring_outage_ended":
            row = db.execute("SELECT id FROM tickets WHERE incident_key = ? AND state != 'resolved'",
                             (f"monitoring:{event.contract}:*",)).fetchone()
            if row is not None:
                start = event.data.get("start") or event.at
                self._resolve(db, row["id"], f"the reference targets answer again after {format_duration(event.at - start)};"
                              " the time in between is recorded as unknown", event.at, "recovered")
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
        existing = db.execute("SELECT * FROM tickets WHERE incident_key = ? AND state != 'resolved'", (key,)).fetchone()
        if existing is not None:
            self._note(db, existing["id"], "repeat", text, now)
            self._enqueue(db, existing["id"], "update", text, now)
            return
        recent = db.execute(
            "SELECT * FROM tickets WHERE incident_key = ? AND state = 'resolved' AND resolved >= ?"
            " ORDER BY resolved DESC LIMIT 1", (key, event.at - contract.ticket_merge_window),
        ).fetchone()
        if recent is not None:
            db.execute("UPDATE tickets SET state = 'open', resolved = NULL, acknowledged = NULL WHERE id = ?", (recent["id"],))
            self._note(db, recent["id"], "reopened", f"reopened within the merge window: {text}", now)
            self._enqueue(db, recent["id"], "reopen", f"Reopened: {text}", now)
            return
        parent_id = None
        if event.kind == "outage_started" and contract.grouping is not None and event.target:
            parent_id = self._group(db, contract, event, now)
        self._open(db, key, contract, [event.target] if event.target else [], severity, kind, title, event.at, text,
                   parent_id)

    def _group(self, db: sqlite3.Connection, contract: Contract, event: BreachEvent, now: float) -> int | None:
        rule = contract.grouping
        key = f"group:{contract.id}"
        parent = db.execute("SELECT * FROM tickets WHERE incident_key = ? AND state != 'resolved'", (key,)).fetchone()
        if parent is not None and event.at - parent["opened"] <= rule.window:
            targets = json.loads(parent["targets"]) + [event.target]
            db.execute("UPDATE tickets SET targets = ? WHERE id = ?", (json.dumps(targets), parent["id"]))
            text = f"{event.target} is down too ({len(targets)} targets of {contract.id} down together)"
            self._note(db, parent["id"], "grouped", text, now)
            self._enqueue(db, parent["id"], "update", text, now)
            return parent["id"]
        siblings = db.execute(
            "SELECT id, targets FROM tickets WHERE contract = ? AND kind = 'outage' AND state != 'resolved'"
            " AND parent_id IS NULL AND opened >= ?", (contract.id, event.at - rule.window),
        ).fetchall()
        if len(siblings) + 1 < rule.min_targets:
            return None
        targets = [json.loads(s["targets"])[0] for s in siblings] + [event.target]
        parent_id = self._open(
            db, key, contract, targets, "critical", "outage",
            f"{contract.id}: {len(targets)} targets down together", event.at,
            f"{len(targets)} targets of {contract.id} went down within {format_duration(rule.window)}: "
            + ", ".join(targets),
        )
        for s in siblings:
            dropped = db.execute("DELETE FROM outbox WHERE ticket_id = ? AND delivered IS NULL", (s["id"],)).rowcount
            delivered = db.execute("SELECT COUNT(*) FROM outbox WHERE ticket_id = ?", (s["id"],)).fetchone()[0]
            if delivered:
                # it already reached a sink: tell the sink where the incident went
                self._enqueue(db, s["id"], "update", f"grouped under slawatch ticket {parent_id}", now)
            db.execute("UPDATE tickets SET parent_id = ? WHERE id = ?", (parent_id, s["id"]))
            self._note(db, s["id"], "grouped", f"grouped under ticket {parent_id}"
                       + (f"; {dropped} pending deliveries superseded by the parent" if dropped else ""), now)
        return parent_id

    def _recovered(self, db: sqlite3.Connection, event: BreachEvent, contract: Contract, now: float) -> None:
        prefix = "outage" if event.kind == "outage_ended" else "degradation"
        key = f"{prefix}:{event.contract}:{event.target}"
        row = db.execute("SELECT * FROM tickets WHERE incident_key = ? AND state != 'resolved'", (key,)).fetchone()
        if row is None:
            return
        start = event.data.get("start") or row["opened"]
        text = (f"{event.target} recovered at {_stamp(event.at)} after {format_duration(event.at - start)} "
                f"({prefix} from {_stamp(start)})")
        if contract.auto_resolve:
            self._resolve(db, row["id"], text, event.at, "recovered")
        else:
            self._note(db, row["id"], "recovered", text + "; left open for a person to resolve", now)
            self._enqueue(db, row["id"], "update", text, now)
        if row["parent_id"] is not None:
            open_children = db.execute(
                "SELECT COUNT(*) FROM tickets WHERE parent_id = ? AND state != 'resolved'", (row["parent_id"],)
            ).fetchone()[0]
            if open_children == 0 and contract.auto_resolve:
                self._resolve(db, row["parent_id"], f"all grouped targets recovered; last: {text}", event.at, "recovered")
            else:
                self._note(db, row["parent_id"], "child recovered", text, now)

    def _resolve(self, db: sqlite3.Connection, ticket_id: int, text: str, at: float, kind: str = "resolved") -> None:
        db.execute("UPDATE tickets SET state = 'resolved', resolved = ? WHERE id = ?", (at, ticket_id))
        self._note(db, ticket_id, kind, text, at)
        self._enqueue(db, ticket_id, "resolve", text, at)

    # -- escalation ----------------------------------------------------------------------
    def _escalate_ticket(self, db: sqlite3.Connection, ticket_id: int, now: float, text: str | None = None) -> None:
        row = db.execute("SELECT * FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
        contract = self.contracts.get(row["contract"])
        if contract is None or row["state"] != "open" or row["parent_id"] is not None:
            return
        for tier in sorted(contract.escalation, key=lambda t: t.tier):
            if tier.tier <= row["tier"] or now - row["opened"] < tier.after:
                continue
            db.execute("UPDATE tickets SET tier = ? WHERE id = ?", (tier.tier, ticket_id))
            body = text or f"Escalated to tier {tier.tier}: unacknowledged for {format_duration(now - row['opened'])}"
            self._note(db, ticket_id, "escalated", f"tier {tier.tier}: {', '.join(tier.sinks)}"
                       + (f" ({', '.join(tier.recipients)})" if tier.recipients else ""), now)
            self._enqueue(db, ticket_id, "open", f"[{row['title']}] {body}", now, sinks=tier.sinks,
                          recipients=tier.recipients)

    def escalate(self, store, now: float | None = None) -> None:
        """Move every open, unacknowledged ticket up the tiers its age has reached."""
        now = self.clock() if now is None else now
        with store.transaction() as db:
            db.row_factory = sqlite3.Row
            for row in db.execute("SELECT id FROM tickets WHERE state = 'open' AND parent_id IS NULL").fetchall():
                self._escalate_ticket(db, row["id"], now)

    # -- people ---------------------------------------------------------------------------
    @staticmethod
    def _row_for_update(db: sqlite3.Connection, ticket_id: int) -> sqlite3.Row:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
        if row is None:
            raise TicketError(f"no ticket {ticket_id}")
        return row

    def acknowledge(self, store, ticket_id: int, by: str, now: float | None = None) -> Ticket:
        now = self.clock() if now is None else now
        with store.transaction() as db:
            row = self._row_for_update(db, ticket_id)
            if row["state"] == "open":
                db.execute("UPDATE tickets SET state = 'acknowledged', acknowledged = ? WHERE id = ?", (now, ticket_id))
                self._note(db, ticket_id, "acknowledged", f"acknowledged by {by}", now)
                self._enqueue(db, ticket_id, "update", f"Acknowledged by {by}", now)
            elif row["state"] == "resolved":
                raise TicketError(f"ticket {ticket_id} is already resolved")
        return load_ticket(store, ticket_id)

    def resolve(self, store, ticket_id: int, by: str, now: float | None = None) -> Ticket:
        now = self.clock() if now is None else now
        with store.transaction() as db:
            row = self._row_for_update(db, ticket_id)
            if row["state"] == "resolved":
                raise TicketError(f"ticket {ticket_id} is already resolved")
            self._resolve(db, ticket_id, f"resolved by {by}", now)
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

    @staticmethod
    def _describe(event: BreachEvent) -> str:
        if event.kind == "outage_started":
            return f"{event.target} down since {_stamp(event.at)} (dated from the first failed probe cycle)"
        if event.kind == "degradation_started":
            return f"{event.target} outside its quality objective since {_stamp(event.at)}"
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


def load_ticket(store, ticket_id: int) -> Ticket:
    with store._lock:
        store._db.row_factory = sqlite3.Row
        row = store._db.execute("SELECT * FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
    if row is None:
        raise TicketError(f"no ticket {ticket_id}")
    return _ticket(row)


def list_tickets(store, *, contract: str | None = None, state: str | None = None, since: float | None = None,
                 until: float | None = None) -> list[Ticket]:
    query, args = "SELECT * FROM tickets WHERE 1=1", []
    for clause, value in (("contract = ?", contract), ("state = ?", state), ("opened >= ?", since), ("opened < ?", until)):
        if value is not None:
            query += f" AND {clause}"
            args.append(value)
    with store._lock:
        store._db.row_factory = sqlite3.Row
        rows = store._db.execute(query + " ORDER BY id", args).fetchall()
    return [_ticket(r) for r in rows]


def ticket_timeline(store, ticket_id: int) -> list[tuple[float, str, str]]:
    with store._lock:
        rows = store._db.execute("SELECT at, kind, text FROM ticket_events WHERE ticket_id = ? ORDER BY id",
                                 (ticket_id,)).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def ticket_refs(store, ticket_id: int) -> dict[str, str]:
    with store._lock:
        rows = store._db.execute("SELECT sink, external_id FROM ticket_refs WHERE ticket_id = ?", (ticket_id,)).fetchall()
    return {r[0]: r[1] for r in rows}


def response_times(ticket: Ticket, contract: Contract) -> dict:
    """Time to acknowledge and to resolve, and whether each met the contract's target for the severity."""
    target = contract.response_targets.get(ticket.severity)
    ack = None if ticket.acknowledged is None else ticket.acknowledged - ticket.opened
    res = None if ticket.resolved is None else ticket.resolved - ticket.opened
    return {
        "severity": ticket.severity,
        "acknowledge_s": ack,
        "resolve_s": res,
        "acknowledge_target_s": target.acknowledge if target else None,
        "resolve_target_s": target.resolve if target else None,
        "acknowledge_met": None if target is None or ack is None else ack <= target.acknowledge,
        "resolve_met": None if target is None or res is None else res <= target.resolve,
    }
