"""Ticket delivery against real peers (Request Tracker 5, Alertmanager, an aiosmtpd SMTP server) and,
where no real server can run here (Jira, ServiceNow), against their documented request/response shapes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
import urllib.request

import pytest

from conftest import wait_for, free_port
from fakehttp import FakeHttp
from monitor.config import parse_config
from monitor.events import outage_event
from monitor.store import Batch
from monitor.tickets.delivery import Deliverer
from monitor.tickets.ledger import Ledger, list_tickets, ticket_refs
from monitor.tickets.sinks import Delivery, make_sink
from peers import Alertmanager, RtServer, alertmanager_available, rt_available

T0 = 1_795_000_000.0


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


class Env:
    def __init__(self, stores, sinks: list[dict], **contract):
        self.config = parse_config({
            "contracts": [{"id": "c1", "customer": "A", "provider": "B", "objectives": {"availability": "99.9%"},
                           "escalation": [{"tier": 1, "after": "0s", "sinks": [s["name"] for s in sinks],
                                           "recipients": ["noc@example.net"]}], **contract}],
            "targets": [{"id": "t1", "contract": "c1", "kind": "internet", "address": "127.0.0.1"}],
            "ticket_sinks": sinks,
            "dashboard_url": "https://grafana.example.net/d/t?var-target={target}",
            "report_url": "https://reports.example.net/{contract}/{month}.html",
        })
        self.store = stores()
        self.clock = Clock(T0)
        self.ledger = Ledger(self.config, self.clock)
        self.sinks = {s.name: make_sink(s) for s in self.config.ticket_sinks}
        self.deliverer = Deliverer(self.store, self.ledger, self.sinks, self.clock)
        self.loop = asyncio.new_event_loop()  # one loop, as in the daemon (httpx clients belong to a loop)

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def emit(self, *events) -> None:
        self.store.write(Batch(events=list(events)), on_new_event=self.ledger.apply)

    def deliver(self) -> int:
        return self.run(self.deliverer.run_once())

    def outbox(self):
        return [(o.sink, o.action, o.delivered, o.attempts, o.last_error) for o in self.store.outbox()]


# --------------------------------------------------------------------------- Request Tracker


@pytest.fixture(scope="module")
def rt():
    ok, why = rt_available()
    if not ok:
        pytest.skip(why)
    server = RtServer(free_port()).start()
    yield server
    server.stop()


def rt_ticket_text(rt, ticket_id) -> str:
    """Every text attachment of an RT ticket's transactions, decoded (REST2 serves Content base64-encoded)."""
    import base64

    out = []
    for tx in rt.api("GET", f"/ticket/{ticket_id}/history")["items"]:
        for att in rt.api("GET", f"/transaction/{tx['id']}/attachments").get("items") or []:
            content = rt.api("GET", f"/attachment/{att['id']}").get("Content") or ""
            try:
                out.append(base64.b64decode(content).decode("utf-8", "replace"))
            except ValueError:
                out.append(content)
    return "\n".join(out)


def test_request_tracker_lifecycle_and_acknowledgement(rt, every_store):
    env = Env(every_store, [{"name": "rt-noc", "type": "rt", "url": rt.url, "token": rt.token, "queue": "General"}],
              customer_email="noc@reseller.example")
    env.emit(outage_event("outage_started", "c1", "t1", T0, None, "no reply to 3 echo requests"))
    assert env.deliver() == 1
    [ticket] = list_tickets(env.store)
    [rt_ticket] = rt.tickets_with(f"[slawatch:{ticket.uid}]")
    assert rt_ticket["Subject"] == f"t1 is down [slawatch:{ticket.uid}]" and rt_ticket["Status"] == "new"
    # what a NOC acts on: priority from the severity, the customer as a Cc (#27: not the requestor, whom RT mails
    # the ticket's text), the circuit in an internal comment
    full = rt.api("GET", f"/ticket/{rt_ticket['id']}")
    assert str(full["Priority"]) == "90"
    assert [r["id"] for r in full["Cc"]] == ["noc@reseller.example"] and full["Requestor"] == []
    text = rt_ticket_text(rt, rt_ticket["id"])
    for needle in ("customer: A (contract c1, provider B)", "circuit: t1 (internet)", "address: 127.0.0.1",
                   "cause: no reply to 3 echo requests", "dashboard: https://grafana.example.net/d/t?var-target=t1",
                   f"report: https://reports.example.net/c1/{time.strftime('%Y-%m', time.gmtime(T0))}.html"):
        assert needle in text, (needle, text)
    assert ticket_refs(env.store, ticket.id) == {"rt-noc": str(rt_ticket["id"])}

    # nobody took it yet: not acknowledged; then a NOC engineer takes it in RT
    assert env.run(env.deliverer.poll_acknowledgements()) == 0
    rt.api("PUT", f"/ticket/{rt_ticket['id']}", {"Owner": "root"})
    assert env.run(env.deliverer.poll_acknowledgements()) == 1
    [ticket] = list_tickets(env.store)
    assert ticket.state == "acknowledged"

    env.clock.t = T0 + 2700
    env.emit(outage_event("outage_ended", "c1", "t1", T0 + 2700, T0))
    while env.deliver():
        pass
    assert rt.api("GET", f"/ticket/{rt_ticket['id']}")["Status"] == "resolved"
    history = rt.api("GET", f"/ticket/{rt_ticket['id']}/history")["total"]
    assert history >= 4  # create, owner, comments, status
    assert [r[1] for r in env.outbox()] == ["open", "update", "resolve"] and all(r[2] for r in env.outbox())


def test_request_tracker_crash_between_delivery_and_bookkeeping_gives_one_ticket(rt, every_store):
    env = Env(every_store, [{"name": "rt-noc", "type": "rt", "url": rt.url, "token": rt.token}])
    env.emit(outage_event("outage_started", "c1", "t1", T0, None))
    [ticket] = list_tickets(env.store)
    row = env.store.outbox()[0]
    # the sink delivers, then the process dies before the outbox row is marked
    created = env.run(env.sinks["rt-noc"].deliver(Delivery(ticket, "open", row.text, [], row.idempotency_key)))
    assert env.outbox()[0][2] is None
    # restart: the deliverer retries the row and finds the ticket by its key instead of creating another
    assert env.deliver() == 1
    assert len(rt.tickets_with(f"[slawatch:{ticket.uid}]")) == 1
    assert ticket_refs(env.store, ticket.id) == {"rt-noc": created}


def _mail_text(msg) -> str:
    parts = msg.walk() if msg.is_multipart() else [msg]
    return "\n".join((p.get_payload(decode=True) or b"").decode("utf-8", "replace") for p in parts
                     if p.get_content_maintype() == "text")


@pytest.mark.parametrize("customer_as", ["cc", "requestor"])
def test_request_tracker_never_mails_internal_text_to_the_customer(rt, every_store, customer_as):
    """#27, through RT's own mail path (its sendmail pipe, captured): with the customer as a Cc (the default) RT
    mails the customer one notice with the ticket's customer-facing text when slawatch opens it, and nothing of
    its comments or its resolution; as a requestor (the old default, kept as an option) RT's autoreply and
    resolve notice reach the customer too. slawatch's internal text (address, probe cause) is a comment and never
    reaches the customer either way."""
    customer = f"noc-{customer_as}@reseller.example"
    env = Env(every_store, [{"name": "rt-noc", "type": "rt", "url": rt.url, "token": rt.token,
                             "customer_as": customer_as}], customer_email=customer)
    before = len(rt.mails())
    env.emit(outage_event("outage_started", "c1", "t1", T0, None, "no reply to 3 echo requests"))
    assert env.deliver() == 1
    env.clock.t = T0 + 600
    env.emit(outage_event("outage_ended", "c1", "t1", T0 + 600, T0))
    while env.deliver():
        pass
    [ticket] = list_tickets(env.store)
    [rt_ticket] = rt.tickets_with(f"[slawatch:{ticket.uid}]")
    assert rt.api("GET", f"/ticket/{rt_ticket['id']}")["Status"] == "resolved"
    text = rt_ticket_text(rt, rt_ticket["id"])
    assert "address: 127.0.0.1" in text and "cause: no reply to 3 echo requests" in text  # kept, internally

    def recipients(msg) -> str:
        found = []
        for header in ("To", "Cc", "Bcc"):
            found += msg.get_all(header) or []
        return " ".join(found)

    to_customer = [m for m in wait_for("RT's mails", lambda: rt.mails()[before:] or [None], timeout=20)
                   if m is not None and customer in recipients(m)]
    for m in to_customer:
        body = _mail_text(m)
        assert "127.0.0.1" not in body and "no reply to 3 echo requests" not in body, body
    if customer_as == "cc":
        # RT's "On Create Notify Ccs" sends the customer the ticket's customer-facing text, once; nothing else
        assert len(to_customer) == 1, [(m["Subject"], recipients(m)) for m in to_customer]
        assert "Service incident: t1 is down" in _mail_text(to_customer[0]) and ticket.uid in _mail_text(to_customer[0])
    else:
        assert len(to_customer) >= 2, [(m["Subject"], recipients(m)) for m in rt.mails()[before:]]


# --------------------------------------------------------------------------- Alertmanager


def test_alertmanager_down_for_the_whole_outage_then_delivered(every_store):
    ok, why = alertmanager_available()
    if not ok:
        pytest.skip(why)
    port = free_port()
    env = Env(every_store, [{"name": "am", "type": "alertmanager", "url": f"http://127.0.0.1:{port}/"}])
    env.emit(outage_event("outage_started", "c1", "t1", T0, None))
    env.emit(outage_event("outage_ended", "c1", "t1", T0 + 600, T0))
    for minute in range(5):  # the outage comes and goes while Alertmanager is down
        env.clock.t = T0 + 600 + minute * 60
        env.deliver()
    open_row = env.outbox()[0]
    assert open_row[2] is None and open_row[3] >= 3 and "ConnectError" in open_row[4]
    assert env.deliverer.failures["am"] >= 3
    am = Alertmanager(port, free_port()).start()
    try:
        env.clock.t += 3600  # past any backoff
        assert env.deliver() == 1  # open first
        [ticket] = list_tickets(env.store)
        alerts = [a for a in am.alerts() if a["labels"].get("slawatch_ticket") == ticket.uid]
        assert len(alerts) == 1 and alerts[0]["labels"]["target"] == "t1" and alerts[0]["labels"]["severity"] == "critical"
        assert env.deliver() == 1  # then resolve
        assert all(r[2] is not None for r in env.outbox())
        alerts = [a for a in am.alerts() if a["labels"].get("slawatch_ticket") == ticket.uid]
        assert alerts == [] or alerts[0]["endsAt"] <= alerts[0]["updatedAt"]
    finally:
        am.stop()


# --------------------------------------------------------------------------- email (aiosmtpd)


def test_email_starttls_auth_and_threading(smtp_server, stores, monkeypatch, caplog):
    port, cert, received = smtp_server
    monkeypatch.setenv("T_SMTP_PASSWORD", "s3cret-smtp")
    env = Env(stores, [{"name": "mail", "type": "email", "host": "127.0.0.1", "port": port, "starttls": True,
                          "username": "slawatch", "password": "${T_SMTP_PASSWORD}", "from": "slawatch@example.net",
                          "to": ["helpdesk@example.net"], "ca_file": str(cert)}])
    caplog.set_level(logging.DEBUG)
    env.emit(outage_event("outage_started", "c1", "t1", T0, None))
    env.emit(outage_event("outage_started", "c1", "t1", T0, None))  # replay: no second message
    env.emit(outage_event("outage_ended", "c1", "t1", T0 + 600, T0))
    while env.deliver():
        pass
    import email

    msgs = [email.message_from_bytes(e.original_content) for e in received]
    assert len(msgs) == 2
    opened, resolved = msgs
    assert opened["Subject"].endswith("t1 is down") and opened["In-Reply-To"] is None
    assert resolved["In-Reply-To"] == opened["Message-ID"] == resolved["References"]
    assert resolved["Subject"].startswith("[slawatch #1] RESOLVED:")
    assert set(received[0].rcpt_tos) == {"helpdesk@example.net", "noc@example.net"}
    assert len({m["Message-ID"] for m in msgs}) == 2
    assert "s3cret-smtp" not in caplog.text and "s3cret-smtp" not in repr(env.config)


def test_email_server_quoting_the_login_back_never_gets_it_shown(stores, caplog):
    """#31: an SMTP server whose AUTH refusal quotes the login exchange back (base64 of ``\\0user\\0password``,
    and the password as it came): the sink's error, the outbox row and the log show neither."""
    import base64

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    password = "m4il-s3cret"

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    def echoing(server, session, envelope, mechanism, auth_data):
        login = auth_data.login if isinstance(auth_data, LoginPassword) else b"?"
        secret = auth_data.password if isinstance(auth_data, LoginPassword) else b"?"
        quoted = base64.b64encode(b"\0" + login + b"\0" + secret).decode()
        return AuthResult(success=False, handled=False,
                          message=f"535 5.7.8 bad credentials {quoted} ({secret.decode()})")

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, authenticator=echoing,
                            auth_require_tls=False)
    controller.start()
    try:
        env = Env(stores, [{"name": "mail", "type": "email", "host": "127.0.0.1", "port": port, "starttls": False,
                            "username": "slawatch", "password": password, "from": "slawatch@example.net",
                            "to": ["helpdesk@example.net"], "timeout": "2s"}])
        caplog.set_level(logging.DEBUG)
        env.emit(outage_event("outage_started", "c1", "t1", T0, None))
        env.deliver()
        [row] = [o for o in env.store.outbox() if not o.delivered]
        assert row.last_error and "535" in row.last_error and "***" in row.last_error, row.last_error
        b64 = base64.b64encode(b"\0slawatch\0" + password.encode()).decode().rstrip("=")
        ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("slawatch"))  # not the peer's
        assert "535" in ours
        for text in (row.last_error, ours):
            assert password not in text and b64 not in text, text
    finally:
        controller.stop()


# --------------------------------------------------------------------------- webhook


def test_webhook_alertmanager_v4_shape_and_hmac(stores):
    hook = FakeHttp({("POST", "/hook"): lambda req: (200, {})})
    try:
        env = Env(stores, [{"name": "hook", "type": "webhook", "url": hook.url + "hook", "hmac_secret": "k3y"}])
        env.emit(outage_event("outage_started", "c1", "t1", T0, None))
        env.emit(outage_event("outage_ended", "c1", "t1", T0 + 60, T0))
        while env.deliver():
            pass
        assert len(hook.requests) == 2
        first, second = (r["json"] for r in hook.requests)
        assert first["version"] == "4" and first["status"] == "firing" and second["status"] == "resolved"
        for key in ("groupKey", "status", "receiver", "groupLabels", "commonLabels", "commonAnnotations", "externalURL", "alerts"):
            assert key in first
        alert = first["alerts"][0]
        assert set(alert) >= {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
        assert alert["labels"]["target"] == "t1" and alert["startsAt"].endswith("Z")
        assert second["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
        for req in hook.requests:
            expected = "sha256=" + hmac.new(b"k3y", req["raw"], hashlib.sha256).hexdigest()
            assert req["headers"]["X-Slawatch-Signature"] == expected
            assert req["headers"]["Idempotency-Key"]
    finally:
        hook.close()


# --------------------------------------------------------------------------- Jira and ServiceNow (documented shapes)


def test_jira_documented_shapes(stores):
    issues: dict[str, dict] = {}

    def search(req):
        label = req["query"]
        found = [{"key": k} for k, v in issues.items() if any(lbl in urllib.request.unquote(label) for lbl in v["labels"])]
        return 200, {"issues": found, "total": len(found)}

    def create(req):
        key = f"NOC-{len(issues) + 1}"
        issues[key] = {**req["json"]["fields"], "comments": [], "status": "Open"}
        return 201, {"id": str(10000 + len(issues)), "key": key, "self": f"http://jira/rest/api/2/issue/{key}"}

    def comment(req):
        key = req["path"].split("/")[5]
        issues[key]["comments"].append(req["json"]["body"])
        return 201, {"id": "1", "body": req["json"]["body"]}

    def transitions(req):
        key = req["path"].split("/")[5]
        if req["method"] == "GET":
            return 200, {"transitions": [{"id": "11", "name": "In Progress"}, {"id": "31", "name": "Done"}]}
        assert req["json"] == {"transition": {"id": "31"}}
        issues[key]["status"] = "Done"
        return 204, {}

    jira = FakeHttp({("GET", "/rest/api/2/search"): search, ("POST", "/rest/api/2/issue"): create})

    def issue_route(req):
        return (comment if req["path"].endswith("/comment") else transitions)(req)

    jira.routes[("POST", "/rest/api/2/issue/*")] = issue_route
    jira.routes[("GET", "/rest/api/2/issue/*")] = transitions
    try:
        env = Env(stores, [{"name": "jira", "type": "jira", "url": jira.url, "user": "svc", "token": "tok",
                              "project": "NOC"}])
        env.emit(outage_event("outage_started", "c1", "t1", T0, None))
        [ticket] = list_tickets(env.store)
        # a crash after Jira created the issue: the retry finds it by label
        row = env.store.outbox()[0]
        env.run(env.sinks["jira"].deliver(Delivery(ticket, "open", row.text, [], row.idempotency_key)))
        env.emit(outage_event("outage_ended", "c1", "t1", T0 + 60, T0))
        while env.deliver():
            pass
        assert list(issues) == ["NOC-1"]
        issue = issues["NOC-1"]
        assert issue["project"] == {"key": "NOC"} and issue["issuetype"] == {"name": "Incident"}
        assert issue["labels"] == [f"slawatch-{ticket.uid}"] and issue["status"] == "Done"
        assert any("recovered" in c for c in issue["comments"])
        assert jira.requests[0]["headers"]["Authorization"].startswith("Basic ")
    finally:
        jira.close()


def test_servicenow_documented_shapes(stores):
    incidents: dict[str, dict] = {}

    def query(req):
        cid = urllib.request.unquote(req["query"]).split("correlation_id=")[1].split("&")[0]
        return 200, {"result": [{"sys_id": k, "number": v["number"]} for k, v in incidents.items() if v["correlation_id"] == cid]}

    def create(req):
        sys_id = f"{len(incidents) + 1:032x}"
        incidents[sys_id] = {**req["json"], "number": f"INC{len(incidents) + 1:07d}", "state": "1", "work_notes": []}
        return 201, {"result": {"sys_id": sys_id, "number": incidents[sys_id]["number"]}}

    def patch(req):
        sys_id = req["path"].rsplit("/", 1)[1]
        body = req["json"]
        incidents[sys_id]["work_notes"].append(body["work_notes"])
        incidents[sys_id].update({k: v for k, v in body.items() if k != "work_notes"})
        return 200, {"result": {"sys_id": sys_id}}

    snow = FakeHttp({("GET", "/api/now/table/incident"): query, ("POST", "/api/now/table/incident"): create,
                     ("PATCH", "/api/now/table/incident/*"): patch})
    try:
        env = Env(stores, [{"name": "snow", "type": "servicenow", "url": snow.url, "user": "svc", "password": "pw",
                              "assignment_group": "Network Operations"}])
        env.emit(outage_event("outage_started", "c1", "t1", T0, None))
        env.emit(outage_event("outage_ended", "c1", "t1", T0 + 60, T0))
        while env.deliver():
            pass
        [(sys_id, inc)] = incidents.items()
        [ticket] = list_tickets(env.store)
        assert inc["correlation_id"] == ticket.uid and inc["urgency"] == "1" and inc["assignment_group"] == "Network Operations"
        assert inc["state"] == "6" and inc["close_code"] == "Solved (Permanently)"
        assert ticket_refs(env.store, ticket.id) == {"snow": sys_id}
    finally:
        snow.close()


def test_alertmanager_firing_alerts_are_kept_alive(stores):
    ok, why = alertmanager_available()
    if not ok:
        pytest.skip(why)
    am = Alertmanager(free_port(), free_port()).start()
    try:
        env = Env(stores, [{"name": "am", "type": "alertmanager", "url": am.url}])
        env.emit(outage_event("outage_started", "c1", "t1", T0, None))
        env.deliver()
        first = [a for a in am.alerts() if a["labels"]["alertname"] == "SlawatchTicket"][0]
        time.sleep(1.1)
        assert env.run(env.deliverer.keep_alerts_firing()) == 1
        again = [a for a in am.alerts() if a["labels"]["alertname"] == "SlawatchTicket"][0]
        assert again["endsAt"] > first["endsAt"]  # the resolve_timeout deadline moved on
        # #27: the re-send keeps the description it was opened with (cause, customer), not the bare title
        assert again["annotations"]["description"] == first["annotations"]["description"]
        assert again["annotations"]["description"] != again["annotations"]["summary"], again["annotations"]
    finally:
        am.stop()


# --------------------------------------------------------------------------- customer requests (#28)


def test_a_customer_request_from_rt_mailgate_has_its_timeline(rt):
    """A customer writes in through rt-mailgate (as an MTA delivers it). Staff comment internally (not a
    response), the customer writes again (not a response), staff reply (the first response), stall it waiting on
    the customer, it reopens, is resolved, reopened and resolved again: the timeline read back over REST 2 has the
    staff reply as the first response, the stalled and the resolved-then-reopened spans as pauses, one reopen
    and the last resolution; RT's auto-reply (an EmailRecord) is nobody's response."""
    import subprocess
    from urllib.parse import quote

    from monitor.tickets.requests.rt import RtRequestSource, rt_time

    _grant_everyone_create(rt)
    subject = f"our VPN is slow {time.time_ns()}"

    def mail(body: str, subject: str) -> None:
        msg = f"From: Alice <alice@reseller.example>\nTo: rt@slawatch.test\nSubject: {subject}\n\n{body}\n"
        r = subprocess.run(["rt-mailgate", "--queue", "General", "--action", "correspond", "--url", rt.url],
                           input=msg.encode(), env=rt.env, capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr

    mail("Since this morning our VPN is slow.", subject)
    [item] = rt.api("GET", "/tickets?query=" + quote(f"Subject = '{subject}'"))["items"]
    tid = item["id"]
    rt.api("POST", f"/ticket/{tid}/comment", {"Content": "internal: checking the PE router", "ContentType": "text/plain"})
    mail("Any news?", f"[slawatch-test #{tid}] {subject}")
    rt.api("POST", f"/ticket/{tid}/correspond", {"Content": "We are on it.", "ContentType": "text/plain"})
    for status in ("stalled", "open", "resolved", "open", "resolved"):
        rt.api("PUT", f"/ticket/{tid}", {"Status": status})
    history = rt.api("GET", f"/ticket/{tid}/history?fields=Type,Creator,Created,Field,NewValue")["items"]
    staff_reply = next(tx for tx in history if tx["Type"] == "Correspond" and tx["Creator"]["id"] == "root")
    created = next(tx for tx in history if tx["Type"] == "Create")
    assert created["Creator"]["id"] == "alice@reseller.example"
    assert [tx["Creator"]["id"] for tx in history if tx["Type"] == "Correspond"][0] == "alice@reseller.example"

    source = RtRequestSource("rt-requests", rt.url, rt.token, ["General"])

    async def read():
        try:
            since = rt_time(created["Created"])
            return (await source.changed_since(since), await source.timeline(tid),
                    await source.changed_timelines(since))
        finally:
            await source.aclose()

    import asyncio

    changed, t, batch = asyncio.run(read())
    assert str(tid) in changed
    # the daemon's batched read (search fields, histories by TransactionSQL) gives the same timeline
    assert [b for b in batch if b.external_id == str(tid)] == [t]
    statuses = [(rt_time(tx["Created"]), tx["NewValue"]) for tx in history if tx["Type"] == "Status"]
    assert t.requestors == ("alice@reseller.example",) and t.subject == subject
    assert t.opened_ms == rt_time(created["Created"]) and t.first_response_ms == rt_time(staff_reply["Created"])
    assert t.reopened == 1 and t.status == "resolved" and t.resolved_ms == statuses[-1][0]
    stalled = next(at for at, s in statuses if s == "stalled")
    assert t.pauses[0][0] == stalled and len(t.pauses) == 2  # waiting on the customer; resolved, then reopened


def _grant_everyone_create(rt) -> None:
    import subprocess

    from peers import RT_LIB

    subprocess.run(["perl", f"-I{RT_LIB}", "-e", 'use RT; RT::LoadConfig(); RT::Init(); my $q = RT::Queue->new('
                    'RT->SystemUser); $q->Load("General"); my $g = RT::Group->new(RT->SystemUser); '
                    '$g->LoadSystemInternalGroup("Everyone"); for my $r (qw(CreateTicket ReplyToTicket)) { '
                    'my ($ok, $m) = $g->PrincipalObj->GrantRight(Right => $r, Object => $q); }'],
                   env=rt.env, check=True, capture_output=True, timeout=60)


def test_the_daemon_syncs_customer_requests_from_rt(rt, tmp_path, monkeypatch):
    """#28 end to end: `slawatch run` with a request source reads a request mailed in through rt-mailgate, and
    the staff reply after it, into the store (contract from its queue, severity from its priority), resuming from
    its cursor; a bad contract or a queue read twice is a config error at its YAML path."""
    import subprocess

    from conftest import REPO, SLAWATCH
    from monitor.config import parse_config
    from monitor.errors import ConfigError
    from monitor.store import SqliteStore
    from procs import spawn

    _grant_everyone_create(rt)
    monkeypatch.setenv("T_RT_TOKEN", rt.token)
    hook = FakeHttp({("POST", "/hook"): lambda req: (200, {})})
    db, port = tmp_path / "s.db", free_port()
    path = tmp_path / "c.yaml"
    path.write_text(f"""
storage: {{path: {db}, flush_interval: 200ms}}
exporter: {{listen: "127.0.0.1:{port}"}}
contracts: [{{id: c1, customer: Reseller, provider: ExampleTel, objectives: {{availability: 99.9%}},
             response_targets: {{major: {{acknowledge: 2h, resolve: 8h}}, critical: {{acknowledge: 1h, resolve: 4h}},
                                 minor: {{acknowledge: 8h, resolve: 40h}}}},
             request_escalation: [{{at: 0.01%, sinks: [hook], provider: [noc@provider.example],
                                    clocks: [first_response]}}]}}]
ticket_sinks: [{{name: hook, type: webhook, url: "{hook.url}hook"}}]
request_sources:
  - {{name: rt-support, url: "{rt.url}", token: "${{T_RT_TOKEN}}", queues: {{General: c1}}, interval: 1s}}
""")
    proc = spawn(SLAWATCH + ["run", "-c", str(path)], cwd=REPO, stdout=subprocess.DEVNULL,
                 stderr=open(tmp_path / "daemon.log", "w"))
    try:
        from test_daemon_e2e import scrape

        # the first sync reads the queue's backlog (its tiers recorded, not sent); the request comes after it
        read = ("slawatch_customer_request_source_last_read_timestamp_seconds", (("source", "rt-support"),))
        wait_for("the first sync", lambda: read in scrape(port), timeout=60)
        subject = f"portal login fails {time.time_ns()}"
        msg = f"From: Bob <bob@reseller.example>\nTo: rt@slawatch.test\nSubject: {subject}\n\nWe cannot log in.\n"
        r = subprocess.run(["rt-mailgate", "--queue", "General", "--action", "correspond", "--url", rt.url],
                           input=msg.encode(), env=rt.env, capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        from urllib.parse import quote

        [item] = rt.api("GET", "/tickets?query=" + quote(f"Subject = '{subject}'"))["items"]
        rt.api("PUT", f"/ticket/{item['id']}", {"Priority": 75})

        def stored():
            if not db.exists():
                return None
            s = SqliteStore(db)
            try:
                return [x for x in s.requests() if x.subject == subject] if s.schema_version() else None
            finally:
                s.close()

        # stored at once, and again with its new priority once the sync sees that change
        [req] = wait_for("the request stored", lambda: [x for x in stored() or [] if x.severity == "major"],
                         timeout=60)
        assert req.contract == "c1" and req.first_response is None

        labels = (("contract", "c1"), ("severity", "major"))
        metrics = wait_for("the request metrics", lambda: (lambda m: m if ("slawatch_customer_requests_open", labels)
                                                           in m else None)(scrape(port)), timeout=30)
        assert metrics[("slawatch_customer_requests_open", labels)] == 1.0
        assert 0 < metrics[("slawatch_customer_request_next_breach_seconds", labels)] <= 7200  # the 2 h response
        for clock in ("first_response", "resolution"):  # within both targets: counted, no breach
            assert metrics[("slawatch_customer_request_breaches", tuple(sorted(labels + (("clock", clock),))))] == 0.0
        last_read = metrics[("slawatch_customer_request_source_last_read_timestamp_seconds",
                             (("source", "rt-support"),))]
        assert req.opened - 60 <= last_read <= time.time()
        rt.api("POST", f"/ticket/{item['id']}/correspond", {"Content": "Reset it for you.", "ContentType": "text/plain"})
        [req] = wait_for("the staff reply synced", lambda: [x for x in stored() or [] if x.first_response], timeout=60)
        assert req.first_response >= req.opened and req.status == "open"
        wait_for("the next breach is the resolution's", lambda: 7200 < scrape(port).get(
            ("slawatch_customer_request_next_breach_seconds", labels), 0) <= 28800, timeout=30)
        # the escalation at 0.01 % of the 2 h response (0.72 s) went out through the webhook, and its stop after
        # the staff reply; once each
        wait_for("the escalation and its stop", lambda: len(hook.requests) >= 2, timeout=30)
        statuses = [h["json"]["status"] for h in hook.requests]
        assert statuses == ["firing", "resolved"], statuses
        assert "noc@provider.example" in str(hook.requests[0]["json"]) and subject in str(hook.requests[0]["json"])
    finally:
        proc.send_signal(__import__("signal").SIGTERM)
        assert proc.wait(timeout=30) == 0
        hook.close()
    assert len(hook.requests) == 2
    assert rt.token not in (tmp_path / "daemon.log").read_text()

    base = {"contracts": [{"id": "c1", "customer": "A", "provider": "B", "objectives": {"availability": "99.9%"}}]}
    src = {"name": "a", "url": rt.url, "token": "x", "queues": {"General": "nope"}}
    with pytest.raises(ConfigError) as info:
        parse_config({**base, "request_sources": [src, {**src, "name": "b", "queues": {"General": "c1"}}]})
    problems = info.value.problems
    assert any(p.startswith("request_sources[0].queues.General: no such contract") for p in problems), problems
    assert any(p.startswith("request_sources[1].queues.General: this queue is already read") for p in problems)


def test_customer_requests_escalate_through_both_organisations(rt, smtp_server, every_store, monkeypatch):
    """#28 item 3 with the real RT and an aiosmtpd server: a critical request (1 h to respond, 4 h to resolve,
    24x7) escalates at 50 %, 100 % and 150 % of each clock to the provider's and the reseller's contacts; the
    100 % tier also comments on the request itself in RT (never a new RT ticket, never a status change). A
    restart (a new ledger on the same store) sends nothing twice; the staff reply stops the response clock's
    escalation, the resolution the rest, and each stop is told to the sinks that heard of it."""
    import email as emaillib

    from monitor.tickets.requests.rt import RtRequestSource
    from monitor.tickets.requests.stage import to_record

    port, cert, received = smtp_server
    monkeypatch.setenv("T_SMTP_PASSWORD", "s3cret-smtp")
    sinks = [{"name": "mail", "type": "email", "host": "127.0.0.1", "port": port, "starttls": True,
              "username": "slawatch", "password": "${T_SMTP_PASSWORD}", "from": "slawatch@example.net",
              "to": ["noc-robot@example.net"], "ca_file": str(cert)},
             {"name": "rt", "type": "rt", "url": rt.url, "token": rt.token}]
    tiers = [{"at": "50%", "sinks": ["mail"], "provider": ["noc@provider.example"],
              "reseller": ["desk@reseller.example"]},
             {"at": "100%", "sinks": ["mail", "rt"], "provider": ["duty@provider.example"],
              "reseller": ["manager@reseller.example"]},
             {"at": "150%", "sinks": ["mail"], "provider": ["director@provider.example"],
              "reseller": ["director@reseller.example"], "clocks": ["resolution"]}]
    targets = {s: {"acknowledge": "1h", "resolve": "4h"} for s in ("critical", "major", "minor")}
    env = Env(every_store, sinks)
    raw = {
        "contracts": [{"id": "c1", "customer": "Reseller Alliance", "provider": "ExampleTel",
                       "objectives": {"availability": "99.9%"}, "response_targets": targets,
                       "request_escalation": tiers}],
        "ticket_sinks": sinks,
        "request_sources": [{"name": "rt-support", "url": rt.url, "token": rt.token, "queues": {"General": "c1"}}],
    }
    config = parse_config(raw)
    subject = f"voice calls drop {time.time_ns()}"
    tid = str(rt.api("POST", "/ticket", {"Queue": "General", "Subject": subject, "Requestor": "alice@reseller.example",
                                          "Content": "Calls drop after 30 s.", "ContentType": "text/plain",
                                          "Priority": 95})["id"])
    source = RtRequestSource("rt-support", rt.url, rt.token, ["General"])
    settings = config.request_sources[0]

    def read():
        return to_record(settings, env.run(source.timeline(tid)))

    def ledger():  # a new one each time: a restart, or another node taking over
        return Ledger(config, env.clock)

    def escalate(at_h: float) -> int:
        return ledger().escalate_requests(env.store, [r], now=r.opened + at_h * 3600)

    def flush() -> list:
        while env.deliver():
            pass
        out = [(emaillib.message_from_bytes(e.original_content), set(e.rcpt_tos)) for e in received]
        received.clear()
        return out

    env.ledger = Ledger(config, env.clock)
    env.sinks = {s.name: make_sink(s) for s in config.ticket_sinks}
    env.deliverer = Deliverer(env.store, env.ledger, env.sinks, env.clock)
    env.clock.t = time.time() + 7 * 3600  # deliveries are due at once whatever hour the test plays
    try:
        r = read()
        assert r.severity == "critical" and r.contract == "c1" and r.first_response is None
        assert escalate(0.49) == 0 and env.store.outbox() == []
        assert escalate(0.5) == 1 and escalate(0.5) == 0  # tier 1 of the response clock, once across a restart
        [(msg, to)] = flush()
        assert to == {"noc-robot@example.net", "noc@provider.example", "desk@reseller.example"}
        body = msg.get_payload(decode=True).decode()
        assert "no first response after 30m of support time, 50 % of its 1h target" in body, body
        assert f"{rt.url.rstrip('/')}/Ticket/Display.html?id={tid}" in body, body
        assert subject in " ".join(str(msg["Subject"]).split())

        assert escalate(1.0) == 1 and escalate(1.0) == 0  # tier 2: mail and a comment on the request itself
        [(msg, to)] = flush()
        assert to == {"noc-robot@example.net", "duty@provider.example", "manager@reseller.example"}
        history = rt.api("GET", f"/ticket/{tid}/history?fields=Type")["items"]
        assert [h["Type"] for h in history].count("Comment") == 1
        assert len(rt.api("GET", "/tickets?query=" + urllib.request.quote(f"Subject LIKE '{subject}'"))["items"]) == 1
        assert rt.api("GET", f"/ticket/{tid}")["Status"] == "new"
        assert escalate(1.6) == 0  # the 150 % tier is the resolution clock's alone

        rt.api("POST", f"/ticket/{tid}/correspond", {"Content": "Looking at the SBC.", "ContentType": "text/plain"})
        r = read()
        assert r.first_response is not None
        assert escalate(1.7) == 0
        stops = flush()  # the response clock's stop, to both sinks that heard of it
        assert len(stops) == 1 and stops[0][0]["Subject"].startswith("[slawatch #") and "RESOLVED" in stops[0][0]["Subject"]
        assert "first response at" in stops[0][0].get_payload(decode=True).decode()
        assert [h["Type"] for h in rt.api("GET", f"/ticket/{tid}/history?fields=Type")["items"]].count("Comment") == 2
        assert rt.api("GET", f"/ticket/{tid}")["Status"] == "open"  # RT's own move on correspondence, not ours

        assert escalate(2.0) == 1  # the resolution clock: 50 % of 4 h
        assert escalate(6.0) == 2 and escalate(6.0) == 0  # 100 % and 150 % together after a long gap
        mails = flush()
        assert len(mails) == 3 and mails[-1][1] == {"noc-robot@example.net", "director@provider.example",
                                                     "director@reseller.example"}
        rt.api("PUT", f"/ticket/{tid}", {"Status": "resolved"})
        r = read()
        assert r.resolved is not None and escalate(7.0) == 0
        [(msg, _)] = flush()
        assert "RESOLVED" in msg["Subject"] and "resolution at" in msg.get_payload(decode=True).decode()
        assert rt.api("GET", f"/ticket/{tid}")["Status"] == "resolved"
        kinds = [t.kind for t in list_tickets(env.store)]
        assert kinds == ["customer request", "customer request"]
        assert all(t.state == "resolved" for t in list_tickets(env.store))
    finally:
        env.run(source.aclose())


def test_request_escalation_config_errors():
    """Bad request escalation: no targets to take a share of, two tiers at one share, an unknown sink, a share
    that is no percentage, and a source whose severities a contract has no targets for."""
    from monitor.errors import ConfigError

    base = {"id": "c1", "customer": "A", "provider": "B", "objectives": {"availability": "99.9%"}}
    raw = {"contracts": [{**base, "request_escalation": [{"at": "50%", "sinks": ["mail"]}]},
                         {**base, "id": "c2", "response_targets": {"major": {"acknowledge": "1h", "resolve": "4h"}},
                          "request_escalation": [{"at": "50%", "sinks": ["nope"]}, {"at": "50", "sinks": ["nope"]},
                                                 {"at": "2000%", "sinks": ["nope"]}]}],
           "request_sources": [{"name": "a", "url": "http://127.0.0.1:1/", "token": "x", "queues": {"Q": "c2"}},
                               {"name": "b", "url": "http://127.0.0.1:2/", "token": "x", "queues": {"Q": "c1"},
                                "requestor_domains": {"partner.example": "c9"}},
                               {"name": "c", "url": "http://127.0.0.1:3/", "token": "x", "queues": {"Q": "c1"},
                                "requestor_domains": {"bob@partner": "c1"}},
                               {"name": "d", "url": "http://127.0.0.1:4/", "token": "x", "queues": {"Q": "c1"},
                                "waiting_statuses": ["stalled", "resolved"]}]}
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    problems = info.value.problems
    assert any(p.startswith("contracts[0].request_escalation: needs response_targets") for p in problems), problems
    assert any(p.startswith("contracts[1].request_escalation[2].at: must be a percentage between 0% and 1000%")
               for p in problems), problems
    assert any(p.startswith("contracts[1].request_escalation[0].sinks[0]: no such ticket sink") for p in problems)
    assert any(p.startswith("request_sources[0].queues.Q: contract c2 has no response_targets for critical, minor")
               for p in problems), problems
    assert any(p.startswith("request_sources[1].requestor_domains.'partner.example': no such contract") for p in problems)
    assert any(p.startswith("request_sources[2].requestor_domains: bob@partner: must be a mail domain") for p in problems)
    assert any(p.startswith("request_sources[3]: status resolved cannot both pause and resolve") for p in problems), problems


def _custom_fields(rt, *names: str) -> None:
    """Free-form ticket custom fields on the General queue (RT's own API, as an admin sets them up)."""
    import subprocess

    from peers import RT_LIB

    script = ("use RT; RT::LoadConfig(); RT::Init(); my $q = RT::Queue->new(RT->SystemUser); $q->Load('General'); "
              "for my $n (@ARGV) { my $cf = RT::CustomField->new(RT->SystemUser); $cf->Load($n); "
              "$cf->Create(Name => $n, Type => 'FreeformSingle', LookupType => 'RT::Queue-RT::Ticket') "
              "unless $cf->id; $cf->AddToObject($q); }")
    subprocess.run(["perl", f"-I{RT_LIB}", "-e", script, *names], env=rt.env, check=True, capture_output=True,
                   timeout=60)


def test_which_contract_and_severity_a_request_has_and_slawatchs_own_tickets(rt):
    """#28 item 1: a shared queue split by the requestor's mail domain, a custom field naming the contract and one
    naming the severity (over the priority), both read through REST 2 from the real RT; slawatch's own RT tickets
    (the sink's ``[slawatch:<uid>]`` subjects) in the same queue are not customer requests, so nothing is counted
    twice; a configured waiting status ("waiting-on-customer" is not RT's; "stalled" left out) decides the pauses."""
    from monitor.tickets.requests.rt import RtRequestSource
    from monitor.tickets.requests.stage import records_of

    _custom_fields(rt, "Contract", "Severity")
    base = {"customer": "A", "provider": "B", "objectives": {"availability": "99.9%"}}
    config = parse_config({
        "contracts": [{"id": c, **base} for c in ("c1", "c2", "c3")],
        "request_sources": [{"name": "rt", "url": rt.url, "token": rt.token, "queues": {"General": "c1"},
                             "requestor_domains": {"Partner.example": "c2"}, "contract_field": "Contract",
                             "severity_field": "Severity", "waiting_statuses": ["open"]}]})
    settings = config.request_sources[0]
    tag = time.time_ns()

    def create(subject: str, requestor: str, priority: int = 0, **fields) -> str:
        body = {"Queue": "General", "Subject": f"{subject} {tag}", "Requestor": requestor, "Priority": priority,
                "Content": "help", "ContentType": "text/plain"}
        if fields:
            body["CustomFields"] = fields
        return str(rt.api("POST", "/ticket", body)["id"])

    a = create("plain", "alice@reseller.example", priority=75)
    b = create("shared queue", "bob@partner.example")
    c = create("named", "carol@reseller.example", priority=10, Contract="c3", Severity="Critical")
    d = create("unknown contract named", "dave@reseller.example", Contract="c9")
    own = create("[slawatch:0123456789abcdef] t1 is down", "noc@example.net")
    rt.api("PUT", f"/ticket/{a}", {"Status": "open"})  # here "open" waits on the customer
    source = RtRequestSource("rt", rt.url, rt.token, ["General"], waiting=frozenset(settings.waiting_statuses),
                             closed=frozenset(settings.resolved_statuses))

    async def read():
        try:
            return [await source.timeline(i, now_ms=int(time.time() * 1000)) for i in (a, b, c, d, own)]
        finally:
            await source.aclose()

    records = {r.external_id: r for r in records_of(settings, env_run(read()), frozenset({"c1", "c2", "c3"}))}
    assert set(records) == {a, b, c, d}  # slawatch's own ticket is not a customer request
    assert (records[a].contract, records[a].severity) == ("c1", "major")
    assert (records[b].contract, records[b].severity) == ("c2", "minor")
    assert (records[c].contract, records[c].severity) == ("c3", "critical")  # the fields over domain and priority
    assert records[d].contract == "c1"  # a field naming no contract is ignored
    assert len(records[a].pauses) == 1 and records[b].pauses == ()


def env_run(coro):
    return asyncio.run(coro)


def test_a_first_syncs_backlog_is_recorded_not_sent(stores):
    """A source added to a running slawatch: its requests already past their tiers are recorded as reached,
    not sent (no flood of old escalations that day); the next tier is sent when reached; a clock that stops
    without anything sent tells nobody."""
    from monitor.store.base import RequestRecord

    config = parse_config({
        "contracts": [{"id": "c1", "customer": "A", "provider": "B", "objectives": {"availability": "99.9%"},
                       "response_targets": {s: {"acknowledge": "1h", "resolve": "4h"} for s in ("critical", "major", "minor")},
                       "request_escalation": [{"at": "50%", "sinks": ["hook"]}, {"at": "100%", "sinks": ["hook"]}]}],
        "ticket_sinks": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/"}]})
    store = stores()
    ledger = Ledger(config, Clock(T0))
    old = RequestRecord("rt", "1", "c1", "minor", "old question", T0, None, None, "new", (), 0, T0)
    late = RequestRecord("rt", "2", "c1", "minor", "older answered", T0, None, None, "new", (), 0, T0)
    assert ledger.escalate_requests(store, [old, late], now=T0 + 0.6 * 3600, quiet=True) == 0
    assert store.outbox() == []
    assert ledger.escalate_requests(store, [old], now=T0 + 0.7 * 3600) == 0  # tier 1 stays recorded
    assert ledger.escalate_requests(store, [old], now=T0 + 3600) == 1  # tier 2 reached after: sent
    answered = RequestRecord("rt", "2", "c1", "minor", "older answered", T0, T0 + 3000, None, "open", (), 0, T0 + 3000)
    assert ledger.escalate_requests(store, [answered], now=T0 + 3600) == 0
    rows = [(o.action, o.text.split(":")[0]) for o in store.outbox()]
    assert rows == [("open", "Customer request 1 of A (contract c1, severity minor)")], rows  # nothing about #2
    notes = [text for t in list_tickets(store) for _at, kind, text in store.ticket_timeline(t.id) if kind == "escalated"]
    assert any("reached before slawatch followed rt: recorded, not sent" in n for n in notes), notes
