"""Ticket sinks: where the ledger's tickets are delivered.

Every sink implements one Protocol: ``deliver(delivery) -> external id`` for
the actions open / update / reopen / resolve, and optionally
``poll(external id) -> who acknowledged, or None``. Config validation is the
pydantic model of each sink (an invalid sink is a fatal config error).

Each sink uses the external system's own means against duplicates, so a
crash between delivery and bookkeeping never produces a second ticket:

* Request Tracker: the subject carries ``[slawatch:<uid>]``; "open" searches
  for it first.
* Alertmanager: an alert's identity is its label set, which carries the uid.
* Webhook: ``Idempotency-Key`` header; the group key carries the uid.
* Email: a deterministic ``Message-ID`` per delivery, updates thread on the
  first one through ``In-Reply-To`` and ``References``.
* Jira: the label ``slawatch-<uid>``, searched by JQL before creating.
* ServiceNow: ``correlation_id = <uid>``, queried before creating.

HTTP goes through httpx. Secrets are sent, never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol

import httpx

from ..config.models import AlertmanagerSink, EmailSink, JiraSink, RtSink, ServiceNowSink, WebhookSink
from ..errors import SlawatchError
from .ledger import Ticket

__all__ = ["Delivery", "Sink", "SinkError", "make_sink", "send_mail", "RtTicketSink", "AlertmanagerTicketSink",
           "WebhookTicketSink", "EmailTicketSink", "JiraTicketSink", "ServiceNowTicketSink"]


class SinkError(SlawatchError):
    """A delivery failed; the outbox retries it later."""


@dataclass(frozen=True, slots=True)
class Delivery:
    ticket: Ticket
    action: str  # open | update | reopen | resolve
    text: str
    recipients: list[str]
    idempotency_key: str
    external_id: str | None = None
    extra: dict = field(default_factory=dict)


class Sink(Protocol):
    name: str

    async def deliver(self, d: Delivery) -> str: ...

    async def poll(self, external_id: str, last_action: str) -> str | None: ...

    async def aclose(self) -> None: ...


def _iso(ts: float | None) -> str:
    if ts is None:
        return "0001-01-01T00:00:00Z"
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def _labels(t: Ticket) -> dict[str, str]:
    """An alert's labels: the metrics' names (contract, target) and the ledger's severity; what the ticket is
    about is ``ticket_kind`` (``kind`` is the target's service kind in the metrics, internet or voice)."""
    labels = {"alertname": "SlawatchTicket", "slawatch_ticket": t.uid, "contract": t.contract,
              "severity": t.severity, "ticket_kind": t.kind.replace(" ", "_")}
    if len(t.targets) == 1:
        labels["target"] = t.targets[0]
    return labels


class _HttpSink:
    def __init__(self, name: str, base: str, timeout: float, **client: Any):
        self.name = name
        self.base = base.rstrip("/")
        self.client = httpx.AsyncClient(timeout=timeout, **client)

    async def _request(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            resp = await self.client.request(method, self.base + path, **kw)
        except httpx.HTTPError as exc:
            raise SinkError(f"{self.name}: {method} {path}: {type(exc).__name__}: {exc}") from None
        if resp.status_code >= 400:
            raise SinkError(f"{self.name}: {method} {path}: HTTP {resp.status_code}: {resp.text[:200]}")
        return resp

    async def poll(self, external_id: str, last_action: str) -> str | None:
        return None

    async def aclose(self) -> None:
        await self.client.aclose()


# --------------------------------------------------------------------------- Request Tracker


#: ticket severity -> RT priority (0 lowest .. 99 highest)
RT_PRIORITY = {"critical": 90, "major": 70, "minor": 40}


class RtTicketSink(_HttpSink):
    """Request Tracker 5, REST2 API."""

    def __init__(self, cfg: RtSink):
        super().__init__(cfg.name, str(cfg.url) + "REST/2.0" if str(cfg.url).endswith("/") else str(cfg.url) + "/REST/2.0",
                         cfg.timeout, verify=cfg.verify_tls,
                         headers={"Authorization": f"token {cfg.token.get_secret_value()}"})
        self.queue = cfg.queue

    def _tag(self, t: Ticket) -> str:
        return f"[slawatch:{t.uid}]"

    async def _find(self, t: Ticket) -> str | None:
        resp = await self._request("GET", "/tickets", params={"query": f"Subject LIKE '{self._tag(t)}'"})
        items = resp.json().get("items") or []
        return str(items[0]["id"]) if items else None

    async def deliver(self, d: Delivery) -> str:
        t = d.ticket
        ticket_id = d.external_id
        if ticket_id is None:
            ticket_id = await self._find(t)
            if ticket_id is None:
                body = {"Queue": self.queue, "Subject": f"{t.title} {self._tag(t)}",
                        "Content": d.text, "ContentType": "text/plain",
                        "Priority": RT_PRIORITY.get(t.severity, 50)}
                requestor = d.extra.get("requestor")
                if requestor:
                    body["Requestor"] = requestor
                resp = await self._request("POST", "/ticket", json=body)
                return str(resp.json()["id"])
            if d.action == "open":
                return ticket_id
        if d.action in ("open", "update", "reopen", "resolve"):
            await self._request("POST", f"/ticket/{ticket_id}/comment", content=d.text.encode(),
                                headers={"Content-Type": "text/plain"})
        if d.action == "resolve":
            await self._request("PUT", f"/ticket/{ticket_id}", json={"Status": "resolved"})
        elif d.action == "reopen":
            # RT's default lifecycle goes from resolved to open, not to new
            await self._request("PUT", f"/ticket/{ticket_id}", json={"Status": "open"})
        return ticket_id

    async def poll(self, external_id: str, last_action: str) -> str | None:
        """Acknowledged when someone took the ticket (an owner other than Nobody), or set it to open
        (unless slawatch itself set it to open by reopening it)."""
        data = (await self._request("GET", f"/ticket/{external_id}")).json()
        owner = (data.get("Owner") or {}).get("id", "Nobody")
        if owner != "Nobody":
            return f"taken by {owner} in RT"
        if data.get("Status") == "open" and last_action != "reopen":
            return "set to open in RT"
        return None


# --------------------------------------------------------------------------- Alertmanager


class AlertmanagerTicketSink(_HttpSink):
    """Alertmanager v2 API: one alert per ticket, identified by its labels."""

    def __init__(self, cfg: AlertmanagerSink):
        super().__init__(cfg.name, str(cfg.url), cfg.timeout)

    def alert(self, t: Ticket, text: str, resolved_at: float | None) -> dict:
        alert = {"labels": _labels(t), "annotations": {"summary": t.title, "description": text},
                 "startsAt": _iso(t.opened), "generatorURL": ""}
        if resolved_at is not None:
            alert["endsAt"] = _iso(resolved_at)
        return alert

    async def deliver(self, d: Delivery) -> str:
        resolved = d.ticket.resolved or d.extra.get("now") if d.action == "resolve" else None
        await self._request("POST", "/api/v2/alerts", json=[self.alert(d.ticket, d.text, resolved)])
        return d.ticket.uid

    async def refresh(self, ticket: Ticket) -> None:
        """Re-send a firing alert: Alertmanager resolves alerts not re-sent within its resolve_timeout."""
        await self._request("POST", "/api/v2/alerts", json=[self.alert(ticket, ticket.title, None)])


# --------------------------------------------------------------------------- webhook


class WebhookTicketSink(_HttpSink):
    """Alertmanager's webhook JSON (version 4), optionally HMAC-SHA256 signed."""

    def __init__(self, cfg: WebhookSink):
        super().__init__(cfg.name, str(cfg.url), cfg.timeout)
        self.secret = cfg.hmac_secret.get_secret_value().encode() if cfg.hmac_secret else None
        self.url = str(cfg.url)

    def payload(self, d: Delivery) -> dict:
        t = d.ticket
        labels = _labels(t)
        status = "resolved" if d.action == "resolve" else "firing"
        fingerprint = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
        return {
            "version": "4",
            "groupKey": f"{{}}:{{slawatch_ticket=\"{t.uid}\"}}",
            "truncatedAlerts": 0,
            "status": status,
            "receiver": self.name,
            "groupLabels": {"slawatch_ticket": t.uid},
            "commonLabels": labels,
            "commonAnnotations": {"summary": t.title, "description": d.text},
            "externalURL": "",
            "alerts": [{
                "status": status, "labels": labels,
                "annotations": {"summary": t.title, "description": d.text, "action": d.action},
                "startsAt": _iso(t.opened),
                "endsAt": _iso(d.extra.get("now")) if status == "resolved" else "0001-01-01T00:00:00Z",
                "generatorURL": "", "fingerprint": fingerprint,
            }],
        }

    async def deliver(self, d: Delivery) -> str:
        body = json.dumps(self.payload(d), separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": d.idempotency_key}
        if self.secret:
            headers["X-Slawatch-Signature"] = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        try:
            resp = await self.client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SinkError(f"{self.name}: POST: {type(exc).__name__}: {exc}") from None
        if resp.status_code >= 400:
            raise SinkError(f"{self.name}: POST: HTTP {resp.status_code}")
        return f"slawatch/{d.ticket.uid}"


# --------------------------------------------------------------------------- email


def tls_context(c: EmailSink) -> ssl.SSLContext | None:
    """The STARTTLS context of an email sink (its CA file, or the system's CAs); a CA file that cannot be read
    or holds no certificate is an error here, when the sink is built, not at its first mail."""
    if not c.starttls:
        return None
    try:
        return ssl.create_default_context(cafile=c.ca_file)
    except (OSError, ssl.SSLError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else (getattr(exc, "reason", None) or exc)
        raise SinkError(f"email sink {c.name!r}: ca_file {c.ca_file}: not a readable PEM CA file ({reason})") from None


def send_mail(c: EmailSink, msg: EmailMessage, context: ssl.SSLContext | None = None) -> None:
    """Send through an email sink's SMTP server: STARTTLS (with its CA file) and AUTH as configured."""
    if context is None:
        context = tls_context(c)
    try:
        with smtplib.SMTP(c.host, c.port, timeout=c.timeout) as smtp:
            if c.starttls:
                smtp.starttls(context=context)
            if c.username:
                smtp.login(c.username, c.password.get_secret_value() if c.password else "")
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise SinkError(f"{c.name}: SMTP {c.host}:{c.port}: {type(exc).__name__}: {exc}") from None


class EmailTicketSink:
    """Mail for helpdesks that open tickets from mail; updates thread on the first message."""

    def __init__(self, cfg: EmailSink):
        self.name = cfg.name
        self.cfg = cfg
        self.context = tls_context(cfg)

    @staticmethod
    def root_id(t: Ticket) -> str:
        return f"<slawatch.{t.uid}@slawatch.invalid>"

    def message(self, d: Delivery) -> EmailMessage:
        t = d.ticket
        msg = EmailMessage()
        msg["From"] = self.cfg.sender
        msg["To"] = ", ".join(dict.fromkeys([*self.cfg.to, *d.recipients]))
        prefix = {"resolve": "RESOLVED: ", "reopen": "REOPENED: "}.get(d.action, "")
        msg["Subject"] = f"[slawatch #{t.id}] {prefix}{t.title}"
        msg["Date"] = formatdate(usegmt=True)
        root = self.root_id(t)
        if d.action == "open" and d.external_id is None:
            msg["Message-ID"] = root
        else:
            digest = hashlib.sha256(d.idempotency_key.encode()).hexdigest()[:24]
            msg["Message-ID"] = f"<slawatch.{t.uid}.{digest}@slawatch.invalid>"
            msg["In-Reply-To"] = root
            msg["References"] = root
        msg["X-Slawatch-Ticket"] = t.uid
        msg["X-Slawatch-Idempotency-Key"] = d.idempotency_key
        msg.set_content(f"{d.text}\n\nContract: {t.contract}\nTargets: {', '.join(t.targets) or '-'}\n"
                        f"Severity: {t.severity}\nslawatch ticket {t.id} ({t.uid})\n")
        return msg

    async def deliver(self, d: Delivery) -> str:
        await asyncio.to_thread(send_mail, self.cfg, self.message(d), self.context)
        return self.root_id(d.ticket)

    async def poll(self, external_id: str, last_action: str) -> str | None:
        return None

    async def aclose(self) -> None:
        return None


# --------------------------------------------------------------------------- Jira


class JiraTicketSink(_HttpSink):
    """Jira REST API v2 (documented request and response shapes)."""

    def __init__(self, cfg: JiraSink):
        super().__init__(cfg.name, str(cfg.url), cfg.timeout, auth=(cfg.user, cfg.token.get_secret_value()))
        self.cfg = cfg

    async def deliver(self, d: Delivery) -> str:
        t = d.ticket
        key = d.external_id
        label = f"slawatch-{t.uid}"
        if key is None:
            found = await self._request("GET", "/rest/api/2/search", params={"jql": f'labels = "{label}"', "fields": "key"})
            issues = found.json().get("issues") or []
            if issues:
                key = issues[0]["key"]
            else:
                body = {"fields": {"project": {"key": self.cfg.project}, "summary": t.title, "description": d.text,
                                   "issuetype": {"name": self.cfg.issue_type}, "labels": [label]}}
                return (await self._request("POST", "/rest/api/2/issue", json=body)).json()["key"]
            if d.action == "open":
                return key
        await self._request("POST", f"/rest/api/2/issue/{key}/comment", json={"body": d.text})
        if d.action == "resolve":
            transitions = (await self._request("GET", f"/rest/api/2/issue/{key}/transitions")).json()["transitions"]
            wanted = next((tr for tr in transitions if tr["name"].lower() in ("done", "resolve issue", "resolved", "close issue", "closed")), None)
            if wanted is None:
                raise SinkError(f"{self.name}: issue {key} has no resolve/done transition "
                                f"(has: {', '.join(tr['name'] for tr in transitions)})")
            await self._request("POST", f"/rest/api/2/issue/{key}/transitions", json={"transition": {"id": wanted["id"]}})
        return key


# --------------------------------------------------------------------------- ServiceNow


class ServiceNowTicketSink(_HttpSink):
    """ServiceNow Table API on the incident table (documented request and response shapes)."""

    URGENCY = {"critical": "1", "major": "2", "minor": "3"}

    def __init__(self, cfg: ServiceNowSink):
        super().__init__(cfg.name, str(cfg.url), cfg.timeout, auth=(cfg.user, cfg.password.get_secret_value()),
                         headers={"Accept": "application/json"})
        self.cfg = cfg

    async def deliver(self, d: Delivery) -> str:
        t = d.ticket
        sys_id = d.external_id
        if sys_id is None:
            found = await self._request("GET", "/api/now/table/incident",
                                        params={"sysparm_query": f"correlation_id={t.uid}", "sysparm_fields": "sys_id,number"})
            result = found.json().get("result") or []
            if result:
                sys_id = result[0]["sys_id"]
            else:
                new = {"short_description": t.title, "description": d.text, "correlation_id": t.uid,
                       "urgency": self.URGENCY.get(t.severity, "3"), "impact": self.URGENCY.get(t.severity, "3")}
                if self.cfg.assignment_group:
                    new["assignment_group"] = self.cfg.assignment_group
                return (await self._request("POST", "/api/now/table/incident", json=new)).json()["result"]["sys_id"]
            if d.action == "open":
                return sys_id
        body: dict[str, str] = {"work_notes": d.text}
        if d.action == "resolve":
            body.update({"state": "6", "close_code": "Solved (Permanently)", "close_notes": d.text})
        await self._request("PATCH", f"/api/now/table/incident/{sys_id}", json=body)
        return sys_id


_KINDS = {RtSink: RtTicketSink, AlertmanagerSink: AlertmanagerTicketSink, WebhookSink: WebhookTicketSink,
          EmailSink: EmailTicketSink, JiraSink: JiraTicketSink, ServiceNowSink: ServiceNowTicketSink}


def make_sink(cfg: Any) -> Sink:
    kind: Any = type(cfg)
    return _KINDS[kind](cfg)
