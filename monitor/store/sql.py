"""The SQL both backends share: the ticket ledger, its timeline, references and outbox.

The statements are written once, with ``?`` placeholders and portable SQL
(``ON CONFLICT``, ``RETURNING``). Each backend hands them an :class:`Exec`
that runs them on its own connection: SQLite as they are, PostgreSQL with
``%s`` placeholders and time parameters as ``timestamptz``. Time parameters
are wrapped in :class:`Epoch` so a backend can tell them from other numbers;
times come back as unix seconds from both.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Iterator, Mapping, Sequence

from monitor.errors import FencedError
from monitor.store.base import Delivered, Fence, OutboxItem, RequestRecord, Ticket

__all__ = ["Epoch", "Exec", "SqlTicketTx", "SqlTickets", "SqlRequests", "loads"]


class Epoch(float):
    """A unix time in seconds passed as a statement parameter (a ``timestamptz`` on PostgreSQL)."""

    __slots__ = ()


def loads(value: Any) -> Any:
    """A JSON column's value: text on SQLite, already decoded on PostgreSQL (jsonb)."""
    if value is None or not isinstance(value, (str, bytes)):
        return value
    return json.loads(value)


def _ep(value: float | None) -> Epoch | None:
    return None if value is None else Epoch(value)


class Exec:
    """Runs shared statements on one backend's connection. Rows are mappings by column name."""

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[Mapping[str, Any]]:
        """Execute; every row."""
        raise NotImplementedError

    def one(self, sql: str, args: Sequence[Any] = ()) -> Mapping[str, Any] | None:
        """Execute; the first row, or None."""
        rows = self.all(sql, args)
        return rows[0] if rows else None

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Execute; returns the number of rows changed."""
        raise NotImplementedError

    def value(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """Execute; the first column of the first row, or None."""
        row = self.one(sql, args)
        return None if row is None else next(iter(row.values()))


def ticket_of(row: Mapping[str, Any]) -> Ticket:
    return Ticket(row["id"], row["uid"], row["incident_key"], row["contract"], loads(row["targets"]),
                  row["severity"], row["kind"], row["state"], row["title"], row["opened"], row["acknowledged"],
                  row["resolved"], row["tier"], row["parent_id"], row["updated"])


def outbox_of(row: Mapping[str, Any]) -> OutboxItem:
    return OutboxItem(row["id"], row["ticket_id"], row["sink"], row["action"], row["text"], loads(row["recipients"]),
                      row["idempotency_key"], row["created"], row["attempts"], row["next_attempt"], row["delivered"],
                      row["last_error"], row["external_id"])


_UNRESOLVED = "SELECT * FROM tickets WHERE incident_key = ? AND state != 'resolved'"


class SqlTicketTx:
    """The :class:`~monitor.store.base.TicketTx` of both SQL backends, inside one open transaction."""

    def __init__(self, ex: Exec):
        self.ex = ex

    def ticket(self, ticket_id: int) -> Ticket | None:
        row = self.ex.one("SELECT * FROM tickets WHERE id = ?", (ticket_id,))
        return None if row is None else ticket_of(row)

    def unresolved(self, incident_key: str) -> Ticket | None:
        row = self.ex.one(_UNRESOLVED, (incident_key,))
        return None if row is None else ticket_of(row)

    def resolved_since(self, incident_key: str, since: float) -> Ticket | None:
        row = self.ex.one("SELECT * FROM tickets WHERE incident_key = ? AND state = 'resolved' AND resolved >= ?"
                          " ORDER BY resolved DESC LIMIT 1", (incident_key, Epoch(since)))
        return None if row is None else ticket_of(row)

    def open_roots(self, contract: str, kind: str, opened_since: float) -> list[Ticket]:
        rows = self.ex.all("SELECT * FROM tickets WHERE contract = ? AND kind = ? AND state != 'resolved'"
                           " AND parent_id IS NULL AND opened >= ? ORDER BY id", (contract, kind, Epoch(opened_since)))
        return [ticket_of(r) for r in rows]

    def open_root_ids(self) -> list[int]:
        return [r["id"] for r in self.ex.all(
            "SELECT id FROM tickets WHERE state = 'open' AND parent_id IS NULL ORDER BY id")]

    def open_children(self, parent_id: int) -> int:
        return int(self.ex.value("SELECT COUNT(*) AS n FROM tickets WHERE parent_id = ? AND state != 'resolved'",
                                 (parent_id,)))

    def insert_ticket(self, uid: str, incident_key: str, contract: str, targets: list[str], severity: str,
                      kind: str, title: str, opened: float, parent_id: int | None) -> int:
        return int(self.ex.value(
            "INSERT INTO tickets (uid, incident_key, contract, targets, severity, kind, state, title, opened, tier,"
            " parent_id, updated) VALUES (?,?,?,?,?,?,'open',?,?,0,?,?) RETURNING id",
            (uid, incident_key, contract, json.dumps(targets), severity, kind, title, Epoch(opened), parent_id,
             Epoch(opened))))

    def set_state(self, ticket_id: int, state: str, *, acknowledged: float | None = None,
                  resolved: float | None = None) -> None:
        self.ex.run("UPDATE tickets SET state = ?, acknowledged = ?, resolved = ? WHERE id = ?",
                    (state, _ep(acknowledged), _ep(resolved), ticket_id))

    def set_targets(self, ticket_id: int, targets: list[str]) -> None:
        self.ex.run("UPDATE tickets SET targets = ? WHERE id = ?", (json.dumps(targets), ticket_id))

    def set_tier(self, ticket_id: int, tier: int) -> None:
        self.ex.run("UPDATE tickets SET tier = ? WHERE id = ?", (tier, ticket_id))

    def set_parent(self, ticket_id: int, parent_id: int) -> None:
        self.ex.run("UPDATE tickets SET parent_id = ? WHERE id = ?", (parent_id, ticket_id))

    def note(self, ticket_id: int, kind: str, text: str, at: float) -> None:
        self.ex.run("INSERT INTO ticket_events (ticket_id, at, kind, text) VALUES (?,?,?,?)",
                    (ticket_id, Epoch(at), kind, text))
        self.ex.run("UPDATE tickets SET updated = ? WHERE id = ?", (Epoch(at), ticket_id))

    def outbox_count(self, ticket_id: int) -> int:
        return int(self.ex.value("SELECT COUNT(*) AS n FROM outbox WHERE ticket_id = ?", (ticket_id,)))

    def enqueue(self, ticket_id: int, sink: str, action: str, text: str, recipients: list[str], key: str,
                at: float) -> None:
        self.ex.run(
            "INSERT INTO outbox (ticket_id, sink, action, text, recipients, idempotency_key, created, next_attempt)"
            " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (idempotency_key) DO NOTHING",
            (ticket_id, sink, action, text, json.dumps(list(recipients)), key, Epoch(at), Epoch(at)))

    def drop_pending(self, ticket_id: int) -> int:
        return self.ex.run("DELETE FROM outbox WHERE ticket_id = ? AND delivered IS NULL", (ticket_id,))

    def add_ref(self, ticket_id: int, sink: str, external_id: str) -> None:
        self.ex.run("INSERT INTO ticket_refs (ticket_id, sink, external_id, last_action) VALUES (?,?,?,'known')"
                    " ON CONFLICT (ticket_id, sink) DO NOTHING", (ticket_id, sink, external_id))


def check_fence(ex: Exec, fence: Fence | None) -> None:
    """Inside a write transaction: the node's lease (and, with a term, the leader lease) is still this
    instance's and unexpired in the database's time, held for the transaction; FencedError otherwise (and the
    transaction rolls back). Only a cluster's store (PostgreSQL) is ever given a fence."""
    if fence is None:
        return
    if ex.one("SELECT 1 AS ok FROM cluster_nodes WHERE node = ? AND instance = ? AND epoch = ? AND left_at IS NULL"
              " AND clock_timestamp() - heartbeat < make_interval(secs => ?) FOR SHARE",
              (fence.node, fence.instance, fence.epoch, fence.failover_delay)) is None:
        raise FencedError(f"write refused: node {fence.node}'s lease (epoch {fence.epoch}) has expired or another "
                          "instance holds it")
    if fence.term is not None and ex.one(
            "SELECT 1 AS ok FROM cluster_leader WHERE id = 1 AND term = ? AND instance = ? AND epoch = ?"
            " AND expires > clock_timestamp() FOR SHARE", (fence.term, fence.instance, fence.epoch)) is None:
        raise FencedError(f"write refused: leader term {fence.term} of node {fence.node} is over (another node "
                          "leads, or the lease expired)")


class SqlRequests:
    """The customer-request reads and writes of :class:`~monitor.store.base.Store`, for both SQL backends (the
    same ``_read()`` and ``_tx()`` as :class:`SqlTickets`)."""

    def _read(self) -> AbstractContextManager[Exec]:
        raise NotImplementedError

    def _tx(self) -> AbstractContextManager[Exec]:
        raise NotImplementedError

    def put_requests(self, records: Sequence[RequestRecord], cursor: tuple[str, float] | None = None,
                     checked: float | None = None) -> None:
        with self._tx() as ex:
            for r in records:
                ex.run("INSERT INTO customer_requests (source, external_id, contract, severity, subject, opened,"
                       " first_response, resolved, status, pauses, reopened, updated) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
                       " ON CONFLICT (source, external_id) DO UPDATE SET contract = excluded.contract,"
                       " severity = excluded.severity, subject = excluded.subject, opened = excluded.opened,"
                       " first_response = excluded.first_response, resolved = excluded.resolved,"
                       " status = excluded.status, pauses = excluded.pauses, reopened = excluded.reopened,"
                       " updated = excluded.updated",
                       (r.source, r.external_id, r.contract, r.severity, r.subject, Epoch(r.opened),
                        _ep(r.first_response), _ep(r.resolved), r.status, json.dumps([list(p) for p in r.pauses]),
                        r.reopened, Epoch(r.updated)))
            if cursor is not None:
                ex.run("INSERT INTO request_cursors (source, updated, checked) VALUES (?, ?, ?) ON CONFLICT (source)"
                       " DO UPDATE SET updated = excluded.updated, checked = COALESCE(excluded.checked,"
                       " request_cursors.checked)", (cursor[0], Epoch(cursor[1]), _ep(checked)))

    def requests(self, contract: str | None = None, start: float | None = None,
                 end: float | None = None) -> list[RequestRecord]:
        query, args = "SELECT * FROM customer_requests WHERE 1=1", []
        for clause, value in (("contract = ?", contract), ("opened >= ?", _ep(start)), ("opened < ?", _ep(end))):
            if value is not None:
                query += f" AND {clause}"
                args.append(value)
        with self._read() as ex:
            rows = ex.all(query + " ORDER BY opened, source, external_id", args)
        return [RequestRecord(r["source"], r["external_id"], r["contract"], r["severity"], r["subject"], r["opened"],
                              r["first_response"], r["resolved"], r["status"],
                              tuple((a, b) for a, b in loads(r["pauses"])), int(r["reopened"]), r["updated"])
                for r in rows]

    def request_cursor(self, source: str) -> float | None:
        with self._read() as ex:
            return ex.value("SELECT updated FROM request_cursors WHERE source = ?", (source,))

    def request_sources_checked(self) -> dict[str, float]:
        with self._read() as ex:
            rows = ex.all("SELECT source, checked FROM request_cursors WHERE checked IS NOT NULL")
        return {r["source"]: r["checked"] for r in rows}


class SqlTickets:
    """The ticket and outbox reads and writes of :class:`~monitor.store.base.Store`, for both SQL backends.

    A backend provides ``_read()`` (a context manager yielding an :class:`Exec` for reads) and
    ``_tx()`` (one yielding an :class:`Exec` inside one write transaction).
    """

    def _read(self) -> AbstractContextManager[Exec]:
        raise NotImplementedError

    def _tx(self) -> AbstractContextManager[Exec]:
        raise NotImplementedError

    @contextmanager
    def tickets_tx(self, fence: Fence | None = None) -> Iterator[SqlTicketTx]:
        """``with store.tickets_tx() as tx:`` the ledger's unit of work in one write transaction (first checking
        ``fence``, a cluster leader's lease and term: FencedError when it no longer holds)."""
        with self._tx() as ex:
            check_fence(ex, fence)
            yield SqlTicketTx(ex)

    def ticket(self, ticket_id: int) -> Ticket | None:
        with self._read() as ex:
            return SqlTicketTx(ex).ticket(ticket_id)

    def tickets(self, *, contract: str | None = None, state: str | None = None, since: float | None = None,
                until: float | None = None) -> list[Ticket]:
        query, args = "SELECT * FROM tickets WHERE 1=1", []
        for clause, value in (("contract = ?", contract), ("state = ?", state), ("opened >= ?", _ep(since)),
                              ("opened < ?", _ep(until))):
            if value is not None:
                query += f" AND {clause}"
                args.append(value)
        with self._read() as ex:
            return [ticket_of(r) for r in ex.all(query + " ORDER BY id", args)]

    def tickets_overlapping(self, contract: str, start: float, end: float) -> list[Ticket]:
        with self._read() as ex:
            rows = ex.all("SELECT * FROM tickets WHERE contract = ? AND opened < ? AND (resolved IS NULL OR resolved >= ?)"
                          " ORDER BY id", (contract, Epoch(end), Epoch(start)))
        return [ticket_of(r) for r in rows]

    def ticket_timeline(self, ticket_id: int) -> list[tuple[float, str, str]]:
        with self._read() as ex:
            rows = ex.all("SELECT at, kind, text FROM ticket_events WHERE ticket_id = ? ORDER BY id", (ticket_id,))
        return [(r["at"], r["kind"], r["text"]) for r in rows]

    def ticket_refs(self, ticket_id: int) -> dict[str, str]:
        with self._read() as ex:
            rows = ex.all("SELECT sink, external_id FROM ticket_refs WHERE ticket_id = ? ORDER BY sink", (ticket_id,))
        return {r["sink"]: r["external_id"] for r in rows}

    def ticket_counts(self) -> dict[tuple[str, str, str], int]:
        with self._read() as ex:
            rows = ex.all("SELECT contract, state, severity, COUNT(*) AS n FROM tickets GROUP BY contract, state, severity")
        return {(r["contract"], r["state"], r["severity"]): int(r["n"]) for r in rows}

    def open_incidents(self, prefix: str) -> dict[str, int]:
        """incident key -> ticket id of the unresolved tickets whose key starts with ``prefix``."""
        with self._read() as ex:
            rows = ex.all("SELECT incident_key, id FROM tickets WHERE state != 'resolved'"
                          " AND substr(incident_key, 1, ?) = ?", (len(prefix), prefix))
        return {r["incident_key"]: r["id"] for r in rows}

    def refs_of_open(self, states: tuple[str, ...]) -> list[tuple[Ticket, str, str, str]]:
        """(ticket, sink, external id, last action) for every reference of a ticket in one of ``states``."""
        marks = ",".join("?" for _ in states)
        with self._read() as ex:
            rows = ex.all("SELECT t.*, r.sink AS ref_sink, r.external_id AS ref_external_id,"
                          " r.last_action AS ref_last_action FROM tickets t JOIN ticket_refs r ON r.ticket_id = t.id"
                          f" WHERE t.state IN ({marks}) ORDER BY t.id, r.sink", states)
        return [(ticket_of(r), r["ref_sink"], r["ref_external_id"], r["ref_last_action"]) for r in rows]

    def outbox_due(self, now: float, limit: int) -> list[OutboxItem]:
        """For each (ticket, sink), its oldest undelivered row, if it is due."""
        with self._read() as ex:
            rows = ex.all(
                "SELECT o.*, r.external_id FROM outbox o LEFT JOIN ticket_refs r"
                " ON r.ticket_id = o.ticket_id AND r.sink = o.sink"
                " WHERE o.delivered IS NULL AND o.next_attempt <= ? AND o.id = ("
                "   SELECT MIN(id) FROM outbox o2 WHERE o2.ticket_id = o.ticket_id AND o2.sink = o.sink"
                "   AND o2.delivered IS NULL) ORDER BY o.id LIMIT ?", (Epoch(now), limit))
        return [outbox_of(r) for r in rows]

    def outbox(self, ticket_id: int | None = None) -> list[OutboxItem]:
        """Every outbox row (of one ticket, or of all), oldest first."""
        with self._read() as ex:
            rows = ex.all("SELECT o.*, NULL AS external_id FROM outbox o"
                          + (" WHERE ticket_id = ?" if ticket_id is not None else "") + " ORDER BY id",
                          (ticket_id,) if ticket_id is not None else ())
        return [outbox_of(r) for r in rows]

    def outbox_pending(self) -> dict[str, int]:
        with self._read() as ex:
            rows = ex.all("SELECT sink, COUNT(*) AS n FROM outbox WHERE delivered IS NULL GROUP BY sink")
        return {r["sink"]: int(r["n"]) for r in rows}

    def outbox_pending_by_ticket(self) -> dict[int, tuple[int, list[str], str | None]]:
        """ticket id -> (undelivered rows, their sinks, the last error) for tickets with pending deliveries."""
        with self._read() as ex:
            rows = ex.all("SELECT ticket_id, sink, last_error FROM outbox WHERE delivered IS NULL ORDER BY id")
        out: dict[int, tuple[int, list[str], str | None]] = {}
        for r in rows:
            n, sinks, err = out.get(r["ticket_id"], (0, [], None))
            if r["sink"] not in sinks:
                sinks = sinks + [r["sink"]]
            out[r["ticket_id"]] = (n + 1, sinks, r["last_error"] or err)
        return out

    def outbox_failed(self, outbox_id: int, attempts: int, next_attempt: float, error: str,
                      fence: Fence | None = None) -> None:
        with self._tx() as ex:
            check_fence(ex, fence)
            ex.run("UPDATE outbox SET attempts = ?, next_attempt = ?, last_error = ? WHERE id = ?",
                   (attempts, Epoch(next_attempt), error[:500], outbox_id))

    def outbox_delivered(self, done: Delivered, fence: Fence | None = None) -> None:
        with self._tx() as ex:
            check_fence(ex, fence)
            ex.run("INSERT INTO ticket_refs (ticket_id, sink, external_id, last_action) VALUES (?,?,?,?)"
                   " ON CONFLICT (ticket_id, sink) DO UPDATE SET last_action = excluded.last_action",
                   (done.ticket_id, done.sink, done.external_id, done.action))
            ex.run("UPDATE outbox SET delivered = ?, attempts = attempts + 1, last_error = NULL WHERE id = ?",
                   (Epoch(done.at), done.outbox_id))

    def clear(self) -> None:
        """Delete every row of every table (``store copy --overwrite``), children first."""
        from monitor.store.base import TABLES

        with self._tx() as ex:
            for table in reversed(list(TABLES)):
                ex.run(f"DELETE FROM {table}")

    def outbox_retry(self, ticket_id: int | None) -> int:
        with self._tx() as ex:
            return ex.run("UPDATE outbox SET next_attempt = ? WHERE delivered IS NULL"
                          + (" AND ticket_id = ?" if ticket_id else ""),
                          (Epoch(0), ticket_id) if ticket_id else (Epoch(0),))
