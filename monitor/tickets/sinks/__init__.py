"""Ticket sinks: where the ledger's tickets are delivered. One module per sink, its settings beside it:

========================  ==================================  ======================================
module                    system                              against duplicates
========================  ==================================  ======================================
:mod:`.rt`                Request Tracker 5 (REST2)           ``[slawatch:<uid>]`` in the subject
:mod:`.alertmanager`      Alertmanager v2 API                 the alert's labels carry the uid
:mod:`.webhook`           Alertmanager webhook JSON v4        ``Idempotency-Key``; the group key
:mod:`.email`             SMTP (helpdesks that read mail)     deterministic ``Message-ID``, threaded
:mod:`.jira`              Jira REST v2                        the label ``slawatch-<uid>``, by JQL
:mod:`.servicenow`        ServiceNow Table API (incident)     ``correlation_id = <uid>``
========================  ==================================  ======================================

So a crash between a delivery and its bookkeeping never makes a second ticket. The Protocol and the optional
capabilities (acknowledgement polling, alert refresh) are in :mod:`.base`. HTTP goes through httpx; secrets are
sent, never logged.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field

from monitor.tickets.sinks.alertmanager import AlertmanagerSinkSettings, AlertmanagerSink
from monitor.tickets.sinks.base import Acknowledging, Delivery, Refreshing, Sink, SinkError, SinkSettings
from monitor.tickets.sinks.email import EmailSinkSettings, EmailSink, send_mail, tls_context
from monitor.tickets.sinks.jira import JiraSinkSettings, JiraSink
from monitor.tickets.sinks.rt import RtSinkSettings, RtSink
from monitor.tickets.sinks.servicenow import ServiceNowSinkSettings, ServiceNowSink
from monitor.tickets.sinks.webhook import WebhookSinkSettings, WebhookSink

__all__ = ["Delivery", "Sink", "Acknowledging", "Refreshing", "SinkError", "SinkSettings", "make_sink", "send_mail",
           "tls_context", "TicketSink", "SINKS", "RtSinkSettings", "AlertmanagerSinkSettings", "WebhookSinkSettings", "EmailSinkSettings", "JiraSinkSettings",
           "ServiceNowSinkSettings", "RtSink", "AlertmanagerSink", "WebhookSink", "EmailSink",
           "JiraSink", "ServiceNowSink"]

#: settings model -> sink class, one per module
SINKS: dict[type, Any] = {RtSinkSettings: RtSink, AlertmanagerSinkSettings: AlertmanagerSink,
                          WebhookSinkSettings: WebhookSink, EmailSinkSettings: EmailSink, JiraSinkSettings: JiraSink,
                          ServiceNowSinkSettings: ServiceNowSink}

#: a ``ticket_sinks`` entry: its ``type`` picks the model
TicketSink = Annotated[
    Union[RtSinkSettings, AlertmanagerSinkSettings, WebhookSinkSettings, EmailSinkSettings, JiraSinkSettings, ServiceNowSinkSettings],
    Field(discriminator="type"),
]


def make_sink(cfg: Any) -> Sink:
    """The sink for a ``ticket_sinks`` entry (its settings model picks the class)."""
    sink: Sink = SINKS[type(cfg)](cfg)
    return sink
