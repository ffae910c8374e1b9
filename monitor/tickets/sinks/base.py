"""What every ticket sink shares: the Protocol, its optional capabilities, the delivery, the settings base.

A sink delivers a ticket's actions (open, update, reopen, resolve) with ``deliver(delivery) -> external id``
and closes with ``aclose()``. Two capabilities are optional and explicit, each a Protocol the deliverer checks
(never ``getattr``):

* :class:`Acknowledging` -- ``poll(external id, last action) -> who acknowledged, or None`` (Request Tracker:
  someone took the ticket);
* :class:`Refreshing` -- ``refresh(ticket, text)`` re-sends a firing alert (Alertmanager resolves alerts that are not
  re-sent within its resolve_timeout).

Each sink module holds its settings model (a :class:`SinkSettings`) beside its class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from monitor.config.types import Identifier, PositiveDuration
from monitor.errors import SlawatchError

if TYPE_CHECKING:
    import httpx

    from monitor.store.base import Ticket

from monitor.secrets import redact

__all__ = ["SinkError", "Delivery", "Sink", "Acknowledging", "Refreshing", "SinkSettings", "HttpSink", "alert_labels",
           "iso_time"]


class SinkError(SlawatchError):
    """A delivery failed; the outbox retries it later."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One action of a ticket (open, update, reopen, resolve) for one sink, with its idempotency key."""

    ticket: "Ticket"
    action: str  # open | update | reopen | resolve
    text: str
    recipients: list[str]
    idempotency_key: str
    external_id: str | None = None
    extra: dict = field(default_factory=dict)


class Sink(Protocol):
    """Delivers a ticket's actions to an external system; returns the external id."""

    name: str

    async def deliver(self, d: Delivery) -> str:
        """Deliver one outbox row (open, update, escalate, resolve, ...) to the external system; returns the
        ticket's id there. Raises SinkError (retried later) on failure."""
        ...

    async def aclose(self) -> None:
        """Close the sink's connections."""
        ...


@runtime_checkable
class Acknowledging(Protocol):
    """A sink that can tell whether someone acknowledged a ticket in the external system."""

    async def poll(self, external_id: str, last_action: str) -> str | None:
        """Whether someone acknowledged the ticket in the external system since ``last_action``: the reason in
        words, or None."""
        ...


@runtime_checkable
class Refreshing(Protocol):
    """A sink whose open tickets must be re-sent to stay open (alerts)."""

    async def refresh(self, ticket: "Ticket", text: str) -> None:
        """Re-send an open ticket so the external system keeps it open."""
        ...


class SinkSettings(BaseModel):
    """The settings every sink has; unknown keys are rejected (as every config model)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: Identifier
    enabled: bool = True
    timeout: PositiveDuration = 10.0


def iso_time(ts: float | None) -> str:
    """Unix seconds as RFC 3339 UTC (Alertmanager's zero time for None)."""
    if ts is None:
        return "0001-01-01T00:00:00Z"
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def alert_labels(t: "Ticket") -> dict[str, str]:
    """An alert's labels: the metrics' names (contract, target) and the ledger's severity; what the ticket is
    about is ``ticket_kind`` (``kind`` is the target's service kind in the metrics, internet or voice)."""
    labels = {"alertname": "SlawatchTicket", "slawatch_ticket": t.uid, "contract": t.contract,
              "severity": t.severity, "ticket_kind": t.kind.replace(" ", "_")}
    if len(t.targets) == 1:
        labels["target"] = t.targets[0]
    return labels


def _credentials(client: dict[str, Any]) -> list[str]:
    """The secrets in an HTTP client's settings: a basic-auth password, an Authorization header's credentials,
    and any header or query value named like a token, key or secret."""
    out: list[str] = []
    auth = client.get("auth")
    if isinstance(auth, tuple) and len(auth) == 2:
        out.append(str(auth[1]))
    for name, value in (client.get("headers") or {}).items():
        lower = name.lower()
        if lower == "authorization":
            out.append(str(value).split(" ", 1)[-1])
        elif any(w in lower for w in ("token", "key", "secret", "password")):
            out.append(str(value))
    return [s for s in out if len(s) >= 3]


class HttpSink:
    """A sink over HTTP (httpx): a failed request or a 4xx/5xx answer is a :class:`SinkError`."""

    def __init__(self, name: str, base: str, timeout: float, **client: Any):
        import httpx  # here, not at import: the config loads without it

        self.name = name
        self.base = base.rstrip("/")
        #: the credentials this sink sends: an upstream's error may echo them, in any encoding (never shown)
        self.secrets = _credentials(client)
        self.client = httpx.AsyncClient(timeout=timeout, **client)

    async def _request(self, method: str, path: str, **kw: Any) -> "httpx.Response":
        import httpx

        try:
            resp = await self.client.request(method, self.base + path, **kw)
        except httpx.HTTPError as exc:
            raise SinkError(redact(f"{self.name}: {method} {path}: {type(exc).__name__}: {exc}", self.secrets)) \
                from None
        if resp.status_code >= 400:
            # redacted before it is cut: a cut through an encoded secret would leave a part nobody recognises
            raise SinkError(f"{self.name}: {method} {path}: HTTP {resp.status_code}: "
                            f"{redact(resp.text, self.secrets)[:200]}")
        return resp

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()
