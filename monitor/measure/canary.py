"""Self-monitoring: reference targets as canaries for the monitoring host's own connectivity.

When the monitoring host's uplink fails, every target goes dark at once. That
is not hundreds of customer outages: it is one monitoring outage. The rule:

* a reference target (``reference: true``) is *failing* when its last cycle
  was not good (no reply, or the probe could not even send);
* while at least ``self_monitoring.reference_failure_ratio`` of the reference
  targets are failing, every failed cycle (customers' and canaries' alike) is
  recorded as ``unknown`` with the reason "monitoring outage", so no outage
  is opened and the time is reported as unknown;
* one internal ticket is raised for the monitoring outage, on the reference
  targets' contract, and resolved when they recover.
"""

from __future__ import annotations

from typing import Any

from monitor.events import BreachEvent

__all__ = ["CanaryWatch", "MONITORING_REASON"]

MONITORING_REASON = "monitoring outage: the reference targets are unreachable from this host"


class CanaryWatch:
    """Watches the reference (canary) targets: when they all fail, the monitoring host is cut off, not the circuits."""

    def __init__(self, reference_targets: dict[str, str], ratio: float):
        """``reference_targets``: target id -> its contract."""
        self.references = dict(reference_targets)
        self.ratio = ratio
        self.failing: dict[str, bool] = {}
        self.down_since: float | None = None

    @classmethod
    def for_config(cls, config: Any) -> "CanaryWatch":
        """The watch of ``config``'s reference targets (a reload then :meth:`carry_over` the running one)."""
        return cls({t.id: t.contract for t in config.targets if t.reference},
                   config.self_monitoring.reference_failure_ratio)

    def carry_over(self, previous: "CanaryWatch") -> None:
        """Take what ``previous`` saw of the references this watch still has (a reload's swap), so a monitoring
        outage in progress stays one."""
        self.failing = {t: v for t, v in previous.failing.items() if t in self.references}
        self.down_since = previous.down_since if self.is_down() else None

    @property
    def enabled(self) -> bool:
        """Whether any reference target is configured."""
        return bool(self.references)

    def is_down(self) -> bool:
        """Whether at least ``ratio`` of the reference targets are failing: the monitoring host is cut off."""
        if not self.references:
            return False
        failing = sum(1 for t in self.references if self.failing.get(t, False))
        return failing >= self.ratio * len(self.references)

    def observe(self, target: str, verdict: str, at: float) -> list[BreachEvent]:
        """Record a reference target's verdict; returns monitoring-outage events on a change."""
        if target not in self.references:
            return []
        was = self.is_down()
        self.failing[target] = verdict != "good"
        now = self.is_down()
        contract = self.references[target]
        if now and not was:
            self.down_since = at
            key = f"monitoring_outage_started:{contract}:{int(round(at * 1000))}"
            return [BreachEvent("monitoring_outage_started", contract, None, at, key,
                                {"start": at, "references": sorted(self.references)})]
        if was and not now:
            start, self.down_since = self.down_since, None
            key = f"monitoring_outage_ended:{contract}:{int(round((start or at) * 1000))}"
            return [BreachEvent("monitoring_outage_ended", contract, None, at, key, {"start": start, "end": at})]
        return []
