"""The per-target state machine. Pure: cycle verdicts in, transitions out.

States: ``up``, ``degraded``, ``down``, ``maintenance``, ``unknown``.

Evidence rule (how probe results become one verdict per cycle):

* ``bad``: the ICMP burst got no reply at all, or SNMP reports the circuit's
  interface administratively up and operationally down.
* ``good``: ICMP got at least one reply (and SNMP does not report the circuit down).
  An SNMP timeout while ICMP answers is *not* an outage.
* ``unknown``: no probe produced evidence (the probe could not run, or the
  only probe is SNMP and the agent did not answer).

A good verdict also carries ``quality_ok``: False when the cycle is outside a
quality objective (loss, latency, jitter or MOS).

Transitions:

* ``down`` is entered after ``failure_threshold`` consecutive bad cycles; the
  outage is dated from the *first* bad cycle of that run.
* ``up`` is re-entered after ``recovery_threshold`` consecutive good cycles;
  the outage ends at the *first* good cycle of that run. Bad cycles in between
  keep the outage open (hysteresis; no data is dropped).
* ``degraded`` is entered from ``up`` after ``degraded_threshold`` consecutive
  good-but-out-of-quality cycles, dated from the first, and left after
  ``recovery_threshold`` in-quality cycles.
* An ``unknown`` cycle changes no counter: while down, the outage stays open;
  otherwise the state becomes ``unknown`` until evidence arrives. From
  ``unknown``, one good cycle gives ``up``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

__all__ = [
    "STATES",
    "Verdict",
    "Transition",
    "TargetTracker",
    "GAP_FACTOR",
]

#: a target's next cycle later than this many intervals after the previous one leaves a gap: unknown time (the
#: daemon was not running or could not keep up); ingestion records it, the evaluator counts an open one
GAP_FACTOR = 1.5

STATES = ("up", "degraded", "down", "maintenance", "unknown")
Verdict = Literal["good", "bad", "unknown"]


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change. ``at`` is when the new state is dated from (backdated where the rules say)."""

    target: str
    old: str
    new: str
    at: float
    decided_at: float
    event: Literal["outage_started", "outage_ended", "degradation_started", "degradation_ended", "state_changed"]
    #: for *_ended events: when the interval that ended had started
    interval_start: float | None = None


@dataclass(slots=True)
class TargetTracker:
    """A target's state machine (up, degraded, down, maintenance, unknown) fed one verdict per cycle."""

    target: str
    failure_threshold: int = 3
    recovery_threshold: int = 2
    degraded_threshold: int = 3
    state: str = "unknown"
    since: float | None = None
    fail_run: int = 0
    fail_start: float | None = None
    good_run: int = 0
    good_start: float | None = None
    qbad_run: int = 0
    qbad_start: float | None = None
    qgood_run: int = 0
    qgood_start: float | None = None
    first_cycle: float | None = None
    last_cycle: float | None = None
    outage_start: float | None = None
    degradation_start: float | None = None
    _pending: list[Transition] = field(default_factory=list, repr=False)

    # -- persistence -------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The persisted fields (all scalars), as a dict. Built by hand: ``dataclasses.asdict`` deep-copies
        and took 45 % of the ingest path (bench/sla_month.py)."""
        return {name: getattr(self, name) for name in _PERSISTED}

    @classmethod
    def restore(cls, data: dict[str, Any], *, failure_threshold: int, recovery_threshold: int, degraded_threshold: int) -> "TargetTracker":
        """A tracker from its stored form, with the thresholds of the config now in force (a reload may have changed
        them)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and not k.startswith("_")}
        tracker = cls(**known)
        tracker.failure_threshold = failure_threshold
        tracker.recovery_threshold = recovery_threshold
        tracker.degraded_threshold = degraded_threshold
        return tracker

    # -- transitions ---------------------------------------------------------------------
    def _move(self, new: str, at: float | None, now: float, event: str, interval_start: float | None = None) -> None:
        """``at``: when the new state is dated from; the run that started it always has a start (``now``, should
        one be missing)."""
        at = now if at is None else at
        self._pending.append(Transition(self.target, self.state, new, at, now, event, interval_start))  # type: ignore[arg-type]
        self.state = new
        self.since = at

    def forget_failures(self) -> None:
        """The current run of failed cycles is no evidence (the canary: the monitoring host was cut off)."""
        self.fail_run, self.fail_start = 0, None

    def force_down(self, at: float) -> list[Transition]:
        """A linkDown trap: down at once, dated from the trap; the next polls confirm or clear it."""
        self._pending = []
        if self.state != "down":
            self.fail_run, self.fail_start = self.failure_threshold, at
            self.good_run, self.good_start = 0, None
            self.outage_start = at
            self._move("down", at, at, "outage_started")
        return self._pending

    def observe(self, at: float, verdict: Verdict, quality_ok: bool = True) -> list[Transition]:
        """Feed one cycle that started at ``at`` (unix seconds). Returns the transitions it caused."""
        self._pending = []
        if self.first_cycle is None:
            self.first_cycle = at
        self.last_cycle = at
        if verdict == "unknown":
            self._unknown(at)
        elif verdict == "bad":
            self._bad(at)
        else:
            self._good(at, quality_ok)
        return self._pending

    def _unknown(self, at: float) -> None:
        if self.state not in ("down", "unknown"):
            if self.state == "degraded":
                start, self.degradation_start = self.degradation_start, None
                self._move("unknown", at, at, "degradation_ended", start)
            else:
                self._move("unknown", at, at, "state_changed")

    def _bad(self, at: float) -> None:
        self.good_run, self.good_start = 0, None
        self.qbad_run = self.qgood_run = 0
        if self.fail_run == 0:
            self.fail_start = at
        self.fail_run += 1
        if self.state != "down" and self.fail_run >= self.failure_threshold:
            if self.state == "degraded":
                self._pending.append(
                    Transition(self.target, "degraded", "down", at if self.fail_start is None else self.fail_start,
                               at, "degradation_ended", self.degradation_start)
                )
                self.degradation_start = None
            self.outage_start = self.fail_start
            self._move("down", self.fail_start, at, "outage_started")

    def _good(self, at: float, quality_ok: bool) -> None:
        self.fail_run, self.fail_start = 0, None
        if self.good_run == 0:
            self.good_start = at
        self.good_run += 1
        if self.state == "down":
            if self.good_run >= self.recovery_threshold:
                start, self.outage_start = self.outage_start, None
                self._move("up", self.good_start, at, "outage_ended", start)
                self.qbad_run = self.qgood_run = 0
            return
        if self.state in ("unknown", "maintenance"):
            self._move("up", at, at, "state_changed")
        if quality_ok:
            self.qbad_run, self.qbad_start = 0, None
            if self.qgood_run == 0:
                self.qgood_start = at
            self.qgood_run += 1
            if self.state == "degraded" and self.qgood_run >= self.recovery_threshold:
                start, self.degradation_start = self.degradation_start, None
                self._move("up", self.qgood_start, at, "degradation_ended", start)
        else:
            self.qgood_run, self.qgood_start = 0, None
            if self.qbad_run == 0:
                self.qbad_start = at
            self.qbad_run += 1
            if self.state == "up" and self.qbad_run >= self.degraded_threshold:
                self.degradation_start = self.qbad_start
                self._move("degraded", self.qbad_start, at, "degradation_started")


#: the tracker's fields that :meth:`TargetTracker.snapshot` persists
_PERSISTED = tuple(f.name for f in fields(TargetTracker) if not f.name.startswith("_"))
