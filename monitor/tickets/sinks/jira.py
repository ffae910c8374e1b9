"""Jira REST API v2 (documented request and response shapes): the label ``slawatch-<uid>``, searched by JQL
before creating."""

from __future__ import annotations

from typing import Literal

from pydantic import HttpUrl, SecretStr

from monitor.tickets.sinks.base import Delivery, HttpSink, SinkError, SinkSettings

__all__ = ["JiraSinkSettings", "JiraSink"]


class JiraSinkSettings(SinkSettings):
    """Settings of a Jira sink: URL, user, token, project and issue type."""

    type: Literal["jira"]
    url: HttpUrl
    user: str
    token: SecretStr
    project: str
    issue_type: str = "Incident"


class JiraSink(HttpSink):
    """Jira REST API v2 (documented request and response shapes)."""

    def __init__(self, cfg: JiraSinkSettings):
        super().__init__(cfg.name, str(cfg.url), cfg.timeout, auth=(cfg.user, cfg.token.get_secret_value()))
        self.cfg = cfg

    async def deliver(self, d: Delivery) -> str:
        """Create the Jira issue (found again by its slawatch label after a crash), comment on it, or transition it;
        returns the issue key."""
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
