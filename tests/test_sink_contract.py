"""One contract, every ticket sink (as gatus runs its store tests over every store).

Each sink is driven through the same steps against its peer: Request Tracker 5 and Alertmanager (real, started
here), a webhook receiver and an SMTP server (aiosmtpd) that record what arrives, and, where no real server can
run here, Jira and ServiceNow as stateful servers of their documented shapes. The HTTP peers sit behind a fault
proxy that can answer 503 or stall, to show an upstream failure and a timeout become a retry, never a lost or a
second ticket:

* create, update, resolve: one ticket in the system, its updates, resolved at the end;
* duplicate guard: the same open delivered twice without its external id (a crash after the send, before the
  bookkeeping) is still one ticket;
* crash between send and commit, through the outbox: the deliverer re-sends and records the same external id;
* upstream 5xx and timeout: a SinkError (in the time allowed), the outbox keeps the delivery, the next run
  delivers it once.
"""

from __future__ import annotations

import asyncio
import base64
import email
import json
import http.server
import threading
import time
import urllib.request
from typing import Any

import pytest

from conftest import free_port
from fakehttp import FakeHttp
from monitor.config import parse_config
from monitor.events import outage_event
from monitor.store import Batch
from monitor.tickets.delivery import Deliverer
from monitor.tickets.ledger import Ledger, list_tickets, ticket_refs
from monitor.tickets.sinks import Delivery, SinkError, make_sink
from peers import Alertmanager, RtServer, alertmanager_available, rt_available

T0 = 1_795_000_000.0
SINK_KINDS = ["rt", "alertmanager", "webhook", "email", "jira", "servicenow"]


# --------------------------------------------------------------------------- a fault proxy for HTTP peers


class FaultProxy:
    """Forwards every request to ``upstream``; ``mode`` "5xx" answers 503 instead, "hang" stalls past any
    sink timeout first, "echo" answers 401 quoting the request's credentials back (as they came, base64 and
    URL-encoded), as some upstreams do."""

    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.mode: str | None = None
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.mode == "hang":
                    time.sleep(3)
                if proxy.mode == "echo":
                    auth = self.headers.get("Authorization", "")
                    value = auth.split(" ", 1)[-1]
                    data = json.dumps({"error": f"invalid credentials: {auth}", "path": self.path,
                                       "token_b64": base64.b64encode(value.encode()).decode(),
                                       "token_url": urllib.parse.quote(value, safe=""),
                                       "decoded": base64.b64decode(value + "==").decode(errors="replace")
                                       if auth.startswith("Basic ") else value}).encode()
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if proxy.mode in ("5xx", "hang"):
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length",
                                                                                      "connection")}
                req = urllib.request.Request(proxy.upstream + self.path, data=body, method=self.command,
                                             headers=headers)
                try:
                    with urllib.request.urlopen(req, timeout=30) as resp:
                        status, data, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
                except urllib.error.HTTPError as exc:
                    status, data, ctype = exc.code, exc.read(), exc.headers.get("Content-Type", "")
                self.send_response(status)
                self.send_header("Content-Type", ctype or "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def json_server(handle) -> FakeHttp:
    """A JSON server (tests/fakehttp.py) whose ``handle(method, path, query, body, headers) -> (status, body)``
    answers every path, keeping its own state."""

    def route(req: dict) -> tuple[int, object]:
        return handle(req["method"], req["path"], urllib.parse.parse_qs(req["query"]), req["json"], req["headers"])

    return FakeHttp({(method, "/*"): route for method in ("GET", "POST", "PUT", "PATCH")})


import urllib.error  # noqa: E402
import urllib.parse  # noqa: E402


# --------------------------------------------------------------------------- the peers, seen as ticket systems


class Peer:
    """A ticket system: ``tickets(uid)`` -> [{"resolved": bool, "updates": int}], one per ticket it holds."""

    cfg: dict
    proxy: FaultProxy | None = None

    def fault(self, mode: str | None) -> None:
        assert self.proxy is not None
        self.proxy.mode = mode

    def tickets(self, uid: str) -> list[dict]:
        raise NotImplementedError

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.close()


class RtPeer(Peer):
    def __init__(self) -> None:
        self.rt = RtServer(free_port()).start()
        self.proxy = FaultProxy(self.rt.url)
        self.cfg = {"name": "sink", "type": "rt", "url": self.proxy.url, "token": self.rt.token, "timeout": "1s"}

    def tickets(self, uid: str) -> list[dict]:
        out = []
        for t in self.rt.tickets_with(f"[slawatch:{uid}]"):
            history = self.rt.api("GET", f"/ticket/{t['id']}/history?per_page=100")["items"]
            comments = sum(1 for h in history if self.rt.api("GET", f"/transaction/{h['id']}").get("Type") == "Comment")
            out.append({"resolved": t["Status"] == "resolved", "updates": comments})
        return out

    def close(self) -> None:
        super().close()
        self.rt.stop()


class AlertmanagerPeer(Peer):
    def __init__(self) -> None:
        self.am = Alertmanager(free_port(), free_port()).start()
        self.seen: set[str] = set()
        self.proxy = FaultProxy(self.am.url)
        self.cfg = {"name": "sink", "type": "alertmanager", "url": self.proxy.url, "timeout": "1s"}

    def tickets(self, uid: str) -> list[dict]:
        """An alert's identity is its label set: every delivery of the ticket is the same alert. A resolved alert
        (endsAt passed) leaves the API's list: seen before and gone is resolved."""
        mine = [a for a in self.am.alerts() if a["labels"].get("slawatch_ticket") == uid]
        if mine:
            self.seen.add(uid)
            return [{"resolved": False, "updates": None} for _ in mine]
        return [{"resolved": True, "updates": None}] if uid in self.seen else []

    def close(self) -> None:
        super().close()
        self.am.stop()


class WebhookPeer(Peer):
    """A receiver that treats each ``Idempotency-Key`` once, as the header asks of it."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.seen: set[str] = set()

        def handle(method, path, query, body, headers):
            key = headers.get("Idempotency-Key")
            if key not in self.seen:
                self.seen.add(key)
                self.posts.append(body)
            return 200, {}

        self.server = json_server(handle)
        self.proxy = FaultProxy(self.server.url)
        self.cfg = {"name": "sink", "type": "webhook", "url": self.proxy.url + "hook", "timeout": "1s"}

    def tickets(self, uid: str) -> list[dict]:
        mine = [p for p in self.posts if p["groupLabels"]["slawatch_ticket"] == uid]
        actions = [p["alerts"][0]["annotations"]["action"] for p in mine]
        state = {"resolved": bool(mine) and mine[-1]["status"] == "resolved", "updates": actions.count("update")}
        return [state] * actions.count("open")  # each distinct open the receiver took is a ticket

    def close(self) -> None:
        super().close()
        self.server.close()


class EmailPeer(Peer):
    """aiosmtpd; a helpdesk that opens one ticket per root Message-ID and threads replies on it. ``fault``:
    "5xx" answers 451 to the mail, "hang" stalls it."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[email.message.Message] = []
        self.mode: str | None = None
        peer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                if peer.mode == "5xx":
                    return "451 4.3.0 try again later"
                if peer.mode == "hang":
                    await asyncio.sleep(3)
                peer.messages.append(email.message_from_bytes(envelope.content))
                return "250 OK"

        port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port)
        self.controller.start()
        self.cfg = {"name": "sink", "type": "email", "host": "127.0.0.1", "port": port, "starttls": False,
                    "from": "slawatch@example.net", "to": ["helpdesk@example.net"], "timeout": "1s"}

    def fault(self, mode: str | None) -> None:
        self.mode = mode

    def tickets(self, uid: str) -> list[dict]:
        mine = [m for m in self.messages if m["X-Slawatch-Ticket"] == uid]
        roots = {m["Message-ID"] for m in mine if not m["In-Reply-To"]}
        replies = [m for m in mine if m["In-Reply-To"] in roots]
        resolved = any("RESOLVED:" in m["Subject"] for m in replies)
        updates = len({m["Message-ID"] for m in replies if "RESOLVED:" not in m["Subject"]})
        return [{"resolved": resolved, "updates": updates} for _ in roots]

    def close(self) -> None:
        self.controller.stop()


class JiraPeer(Peer):
    """Jira REST v2's documented shapes: search by JQL on a label, create, comment, transitions."""

    def __init__(self) -> None:
        self.issues: dict[str, dict] = {}

        def handle(method, path, query, body, headers):
            if method == "GET" and path == "/rest/api/2/search":
                label = query["jql"][0].split('"')[1]
                found = [{"key": k} for k, i in self.issues.items() if label in i["labels"]]
                return 200, {"startAt": 0, "maxResults": 50, "total": len(found), "issues": found}
            if method == "POST" and path == "/rest/api/2/issue":
                key = f"NOC-{len(self.issues) + 1}"
                self.issues[key] = {"labels": body["fields"]["labels"], "comments": 0, "status": "Open"}
                return 201, {"id": str(10000 + len(self.issues)), "key": key, "self": f"/rest/api/2/issue/{key}"}
            parts = path.split("/")
            key = parts[5] if len(parts) > 5 else None
            if key not in self.issues:
                return 404, {"errorMessages": ["Issue does not exist"]}
            if method == "POST" and path.endswith("/comment"):
                self.issues[key]["comments"] += 1
                return 201, {"id": "1", "body": body["body"]}
            if method == "GET" and path.endswith("/transitions"):
                return 200, {"transitions": [{"id": "11", "name": "In Progress"}, {"id": "31", "name": "Done"}]}
            if method == "POST" and path.endswith("/transitions"):
                if body["transition"]["id"] == "31":
                    self.issues[key]["status"] = "Done"
                return 204, None
            return 404, {"errorMessages": ["no such resource"]}

        self.server = json_server(handle)
        self.proxy = FaultProxy(self.server.url)
        self.cfg = {"name": "sink", "type": "jira", "url": self.proxy.url, "user": "noc", "token": "t0ken",
                    "project": "NOC", "timeout": "1s"}

    def tickets(self, uid: str) -> list[dict]:
        return [{"resolved": i["status"] == "Done", "updates": i["comments"] - (1 if i["status"] == "Done" else 0)}
                for i in self.issues.values() if f"slawatch-{uid}" in i["labels"]]

    def close(self) -> None:
        super().close()
        self.server.close()


class ServiceNowPeer(Peer):
    """ServiceNow's Table API on incident: query by correlation_id, create, PATCH work notes and state."""

    def __init__(self) -> None:
        self.incidents: dict[str, dict] = {}

        def handle(method, path, query, body, headers):
            if path == "/api/now/table/incident" and method == "GET":
                wanted = query["sysparm_query"][0].split("=", 1)[1]
                found = [{"sys_id": s, "number": i["number"]} for s, i in self.incidents.items()
                         if i["correlation_id"] == wanted]
                return 200, {"result": found}
            if path == "/api/now/table/incident" and method == "POST":
                sys_id = f"{len(self.incidents) + 1:032x}"
                self.incidents[sys_id] = {"number": f"INC{len(self.incidents) + 1:07d}", "notes": 0, "state": "1",
                                          "correlation_id": body["correlation_id"]}
                return 201, {"result": {"sys_id": sys_id, **self.incidents[sys_id]}}
            sys_id = path.rsplit("/", 1)[-1]
            if method == "PATCH" and sys_id in self.incidents:
                self.incidents[sys_id]["notes"] += 1
                self.incidents[sys_id]["state"] = body.get("state", self.incidents[sys_id]["state"])
                return 200, {"result": {"sys_id": sys_id, **self.incidents[sys_id]}}
            return 404, {"error": {"message": "No Record found"}}

        self.server = json_server(handle)
        self.proxy = FaultProxy(self.server.url)
        self.cfg = {"name": "sink", "type": "servicenow", "url": self.proxy.url, "user": "noc", "password": "sn0w-pw",
                    "timeout": "1s"}

    def tickets(self, uid: str) -> list[dict]:
        return [{"resolved": i["state"] == "6", "updates": i["notes"] - (1 if i["state"] == "6" else 0)}
                for i in self.incidents.values() if i["correlation_id"] == uid]

    def close(self) -> None:
        super().close()
        self.server.close()


PEERS = {"rt": RtPeer, "alertmanager": AlertmanagerPeer, "webhook": WebhookPeer, "email": EmailPeer,
         "jira": JiraPeer, "servicenow": ServiceNowPeer}


@pytest.fixture(scope="module", params=SINK_KINDS)
def peer(request):
    kind = request.param
    if kind == "rt":
        ok, why = rt_available()
        if not ok:
            pytest.skip(why)
    if kind == "alertmanager":
        ok, why = alertmanager_available()
        if not ok:
            pytest.skip(why)
    p = PEERS[kind]()
    p.kind = kind
    yield p
    p.close()


class Env:
    """A ledger, a store and the deliverer around one sink, on one event loop (as in the daemon)."""

    def __init__(self, stores, peer: Peer):
        self.config = parse_config({
            "contracts": [{"id": "c1", "customer": "A", "provider": "B", "objectives": {"availability": "99.9%"},
                           "escalation": [{"tier": 1, "after": "0s", "sinks": ["sink"],
                                           "recipients": ["noc@example.net"]}]}],
            "targets": [{"id": f"t{i}", "contract": "c1", "kind": "internet", "address": "127.0.0.1"}
                        for i in range(1, 4)],
            "ticket_sinks": [peer.cfg],
        })
        self.store = stores()
        self.now = T0
        self.ledger = Ledger(self.config, lambda: self.now)
        self.sink = make_sink(self.config.ticket_sinks[0])
        self.deliverer = Deliverer(self.store, self.ledger, {"sink": self.sink}, lambda: self.now)
        self.loop = asyncio.new_event_loop()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def emit(self, *events) -> None:
        self.store.write(Batch(events=list(events)), on_new_event=self.ledger.apply)

    def pending(self) -> list:
        return [(o.action, o.delivered, o.attempts) for o in self.store.outbox() if not o.delivered]

    def close(self) -> None:
        self.run(self.sink.aclose())
        self.loop.close()


def _open(env: Env, target: str) -> Any:
    env.emit(outage_event("outage_started", "c1", target, env.now, None, "no reply"))
    [ticket] = [t for t in list_tickets(env.store) if target in t.targets]
    return ticket


def wait_for(fn, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_create_update_resolve(peer, stores):
    env = Env(stores, peer)
    try:
        ticket = _open(env, "t1")
        assert env.run(env.deliverer.run_once()) == 1 and env.pending() == []
        external = ticket_refs(env.store, ticket.id).get("sink")
        assert external, ticket_refs(env.store, ticket.id)
        assert len(wait_for(lambda: peer.tickets(ticket.uid))) == 1
        again = env.run(env.sink.deliver(Delivery(ticket, "update", "still down after 10 minutes", [], "upd-1",
                                                  external)))
        assert again == external  # the same ticket
        env.now += 600
        env.emit(outage_event("outage_ended", "c1", "t1", env.now, T0))
        assert env.run(env.deliverer.run_once()) == 1 and env.pending() == []
        [state] = wait_for(lambda: [t for t in peer.tickets(ticket.uid) if t["resolved"]])
        if state["updates"] is not None:
            assert state["updates"] >= 1
    finally:
        env.close()


def test_duplicate_guard(peer, stores):
    """The open delivered twice without its external id (sent, then a crash before it was recorded)."""
    env = Env(stores, peer)
    try:
        ticket = _open(env, "t2")
        first = env.run(env.sink.deliver(Delivery(ticket, "open", "down", [], f"open-{ticket.uid}")))
        second = env.run(env.sink.deliver(Delivery(ticket, "open", "down", [], f"open-{ticket.uid}")))
        assert first == second
        assert len(wait_for(lambda: peer.tickets(ticket.uid))) == 1
    finally:
        env.close()


def test_crash_between_send_and_commit_upstream_5xx_and_timeout(peer, stores):
    """Through the outbox: a 5xx, then a timeout, each leaves the delivery pending with its error; the send
    succeeds but the process dies before the commit; the next run re-sends, and the system still holds one
    ticket, with the external id recorded."""
    env = Env(stores, peer)
    try:
        ticket = _open(env, "t3")
        peer.fault("5xx")
        try:
            assert env.run(env.deliverer.run_once()) == 1
        finally:
            peer.fault(None)
        [row] = [o for o in env.store.outbox() if not o.delivered]
        assert row.attempts == 1 and row.last_error
        assert "503" in row.last_error or "451" in row.last_error, row.last_error
        env.now += 3600  # past any backoff
        peer.fault("hang")
        t0 = time.monotonic()
        try:
            env.run(env.deliverer.run_once())
        finally:
            peer.fault(None)
        assert time.monotonic() - t0 < 2.9  # the sink's 1 s timeout, not the peer's 3 s stall
        [row] = [o for o in env.store.outbox() if not o.delivered]
        assert row.attempts == 2
        assert peer.tickets(ticket.uid) == [] or peer.kind in ("email", "webhook"), peer.tickets(ticket.uid)
        # the send goes through, the commit does not (the process died in between)
        env.run(env.sink.deliver(Delivery(ticket, "open", "down", [], row.idempotency_key)))
        env.now += 3600
        assert env.run(env.deliverer.run_once()) == 1 and env.pending() == []
        assert len(wait_for(lambda: peer.tickets(ticket.uid))) == 1
        assert ticket_refs(env.store, ticket.id).get("sink"), ticket_refs(env.store, ticket.id)
    finally:
        env.close()


def test_errors_are_sink_errors_without_secrets(peer, stores):
    env = Env(stores, peer)
    try:
        ticket = _open(env, "t1")
        peer.fault("5xx")
        try:
            with pytest.raises(SinkError) as info:
                env.run(env.sink.deliver(Delivery(ticket, "open", "down", [], "k")))
        finally:
            peer.fault(None)
        text = str(info.value)
        for secret in ("t0ken", "sn0w-pw", getattr(getattr(peer, "rt", None), "token", "\0")):
            assert secret not in text
    finally:
        env.close()


def _leaked(text: str, secret: str, user: str | None) -> list[str]:
    """The forms of ``secret`` found in ``text``: raw, URL-encoded, base64 alone or as ``user:secret``."""
    found = []
    candidates = {"raw": secret, "url": urllib.parse.quote(secret, safe=""),
                  "b64": base64.b64encode(secret.encode()).decode().rstrip("=")}
    if user:
        candidates["basic"] = base64.b64encode(f"{user}:{secret}".encode()).decode().rstrip("=")
    for name, form in candidates.items():
        if form in text:
            found.append(name)
    return found


@pytest.mark.parametrize("peer", [k for k in SINK_KINDS if k != "email"], indirect=True)  # email: test_ticket_sinks
def test_an_upstream_echoing_the_credentials_never_gets_them_shown(peer, stores, caplog):
    """#31: a Jira or ServiceNow answering 401 with the Authorization header echoed stored and showed
    ``Basic dTpT...`` (the user and token in base64). Every sink with credentials, against an upstream that
    echoes them raw, in base64 and URL-encoded: the error, the outbox row (what ``tickets show`` reads) and the
    log hold none of them."""
    secret = {"rt": getattr(getattr(peer, "rt", None), "token", None), "jira": "t0ken",
              "servicenow": "sn0w-pw"}.get(peer.kind)
    user = peer.cfg.get("user")
    env = Env(stores, peer)
    try:
        ticket = _open(env, "t1")
        peer.fault("echo")
        caplog.set_level("DEBUG")
        try:
            with pytest.raises(SinkError) as info:
                env.run(env.sink.deliver(Delivery(ticket, "open", "down", [], "k")))
            assert "401" in str(info.value)
            env.run(env.deliverer.run_once())
        finally:
            peer.fault(None)
        [row] = [o for o in env.store.outbox() if not o.delivered]
        assert row.last_error and "401" in row.last_error, row.last_error
        if secret is None:
            return  # alertmanager and the webhook send no credential: nothing to leak, the 401 still an error
        if peer.kind != "rt":
            assert "***" in str(info.value)  # the echo was there, and was redacted
        for where, text in (("error", str(info.value)), ("outbox", row.last_error), ("log", caplog.text)):
            assert _leaked(text, secret, user) == [], (where, text)
    finally:
        env.close()
