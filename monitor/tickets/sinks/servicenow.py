"""ServiceNow Table API on the incident table (documented shapes): ``correlation_id = <uid>``, queried before
creating."""

from __future__ import annotations

from typing import Literal

from pydantic import HttpUrl, SecretStr

from monitor.tickets.sinks.base import Delivery, HttpSink, SinkSettings

__all__ = ["ServiceNowSinkSettings", "ServiceNowSink"]


class ServiceNowSinkSettings(SinkSettings):
    """Settings of a ServiceNow sink: instance URL, user, password and assignment group."""

    type: Literal["servicenow"]
    url: HttpUrl
    user: str
    password: SecretStr
    assignment_group: str | None = None


class ServiceNowSink(HttpSink):
    """ServiceNow Table API on the incident table (documented request and response shapes)."""

    URGENCY = {"critical": "1", "major": "2", "minor": "3"}

    def __init__(self, cfg: ServiceNowSinkSettings):
        super().__init__(cfg.name, str(cfg.url), cfg.timeout, auth=(cfg.user, cfg.password.get_secret_value()),
                         headers={"Accept": "application/json"})
        self.cfg = cfg

    async def deliver(self, d: Delivery) -> str:
        """Create the ServiceNow incident (found again by its correlation id after a crash), add work notes, or
        resolve it; returns its sys_id."""
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
