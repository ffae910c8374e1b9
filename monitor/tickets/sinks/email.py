"""Mail for helpdesks that open tickets from mail: a deterministic ``Message-ID`` per delivery; updates thread on
the first one through ``In-Reply-To`` and ``References``."""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr

from monitor.secrets import redact
from monitor.tickets.sinks.base import Delivery, SinkError, SinkSettings

if TYPE_CHECKING:
    from monitor.store.base import Ticket

__all__ = ["EmailSinkSettings", "EmailSink", "send_mail", "tls_context"]


class EmailSinkSettings(SinkSettings):
    """Settings of an email sink: SMTP server, STARTTLS, credentials, sender and recipients."""

    type: Literal["email"]
    host: str
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    ca_file: str | None = None  # a private CA for STARTTLS; the system's CAs by default


def tls_context(c: EmailSinkSettings) -> ssl.SSLContext | None:
    """The STARTTLS context of an email sink (its CA file, or the system's CAs); a CA file that cannot be read
    or holds no certificate is an error here, when the sink is built, not at its first mail."""
    if not c.starttls:
        return None
    try:
        return ssl.create_default_context(cafile=c.ca_file)
    except (OSError, ssl.SSLError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else (getattr(exc, "reason", None) or exc)
        raise SinkError(f"email sink {c.name!r}: ca_file {c.ca_file}: not a readable PEM CA file ({reason})") from None


def send_mail(c: EmailSinkSettings, msg: EmailMessage, context: ssl.SSLContext | None = None) -> None:
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
        # a server's AUTH refusal may quote the credentials back (base64 of the login exchange): redacted
        secrets = [c.password.get_secret_value()] if c.password else []
        raise SinkError(redact(f"{c.name}: SMTP {c.host}:{c.port}: {type(exc).__name__}: {exc}", secrets)) from None


class EmailSink:
    """Mail for helpdesks that open tickets from mail; updates thread on the first message."""

    def __init__(self, cfg: EmailSinkSettings):
        self.name = cfg.name
        self.cfg = cfg
        self.context = tls_context(cfg)

    @staticmethod
    def root_id(t: Ticket) -> str:
        """The Message-ID of the ticket's first mail; later mails refer to it, so a mail client threads them."""
        return f"<slawatch.{t.uid}@slawatch.invalid>"

    def message(self, d: Delivery) -> EmailMessage:
        """The mail for one delivery: subject with severity and state, the text, threading headers."""
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
        """Send the delivery's mail; returns the root Message-ID as the external id."""
        await asyncio.to_thread(send_mail, self.cfg, self.message(d), self.context)
        return self.root_id(d.ticket)

    async def aclose(self) -> None:
        """Nothing to close: each mail uses its own SMTP session."""
        return None
