"""The leader's consensus round: the units' stored states in, the targets' outages, events and unknown time out.

:mod:`monitor.cluster.consensus` decides (pure); this module reads the view of the store the leader has, keeps the
round's memory (the last decision per target, the dark sites), and fills a :class:`~monitor.store.Batch`
that the daemon's writer commits under the leader's lease (fenced, like every write).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from monitor.cluster.consensus import (Change, Combined, dark_sites, decide, quorum_spans, unit_id, unknown_spans,
                                       views_from)
from monitor.events import BreachEvent, outage_event
from monitor.logs import iso
from monitor.measure.state import GAP_FACTOR
from monitor.store import Batch, OutageRecord, StateRecord, UnknownRecord

__all__ = ["ConsensusKeeper", "open_site_outages"]

log = logging.getLogger("slawatch.vantage")

#: seconds between rewrites of a multi-site target's unchanged consensus state
REFRESH = 10.0
#: rounds missed (a takeover, the store out of reach) after which a round replays the sites' outages since the
#: target was last decided
REPLAY_AFTER = 3

#: the sites' down outages and unknown intervals since a time: unit id -> {"down": [(start, end or None)],
#: "unknown": [(start, end)]} (read from the store by the daemon)
History = Callable[[float], dict[str, dict[str, list]]]


class ConsensusKeeper:
    """The leader's N-of-M consensus over the sites' views of multi-site targets."""

    def __init__(self, failover_delay: float, store_lag: float = 1.0, every: float = 1.0):
        self.failover_delay = failover_delay
        #: seconds between rounds (the cluster's heartbeat)
        self.every = every
        #: the most a stored cycle can lag its start beyond the probes' worst case: the writer's flush interval
        self.store_lag = store_lag
        self._last: dict[str, Combined] = {}
        #: dark sites and since when
        self.dark: dict[str, float] = {}
        #: whether the open site outages were read back from the store since this node became leader
        self.loaded = False
        #: for the metrics: each multi-site target's contract and sites' views, and every site named
        self.contracts: dict[str, str] = {}
        self.views: dict[str, list] = {}
        self.sites: set[str] = set()
        #: target -> (state, since, outage_start, unknown_since, when written): a state is rewritten when it
        #: changes, and otherwise every REFRESH seconds (its last_cycle, for the reports' horizon)
        self._written: dict[str, tuple] = {}
        #: targets whose undecided span is being replayed: target -> (span start, replay until)
        self._replaying: dict[str, tuple[float, float]] = {}
        self._replayed_outages: set[tuple[str, float]] = set()

    @property
    def states(self) -> dict[str, str]:
        """Each multi-site target's consensus state."""
        return {t: c.state for t, c in list(self._last.items())}

    def forget(self) -> None:
        """Leadership changed hands: the next round starts from the store."""
        self._last.clear()
        self.dark.clear()
        self.loaded = False
        self.views.clear()
        self._written.clear()
        self._replaying.clear()
        self._replayed_outages.clear()

    def state_names(self, targets: list) -> list[str]:
        """The stored states a round reads: every site's unit, and the targets' own only while this leader has
        not decided them yet (afterwards it keeps them itself; measured: bench/consensus_round.py)."""
        names = [unit_id(t.id, s) for t in targets for s in t.vantage.sites]
        return names + [t.id for t in targets if t.id not in self._last]

    def stale_after(self, target) -> float:
        """A site's view is evidence only until its last cycle's slot has ended: ``GAP_FACTOR`` intervals from
        that cycle's start, plus the time the next cycle's result needs to reach the store (the probes' worst
        case and the writer's flush). A dead node, a takeover or a partition leaves the site without evidence
        then, never up (a failover delay's worth of an old "up" counted before: 14 s at 2 s / 10 s)."""
        return GAP_FACTOR * target.interval + target.worst_case()[0] + self.store_lag

    def _settle(self, t) -> float:
        return (t.failure_threshold + 1) * t.interval + self.failover_delay

    def _settle_max(self, targets: list) -> float:
        return max((self._settle(t) for t in targets), default=0.0)

    def _close_replayed(self, t, prev: Combined, history: dict, now: float, batch: Batch) -> Combined:
        """The outage the last round left open ended while no round decided (the sites' outages show fewer than
        quorum down from some time on): its end is recorded as it happened, and this round decides from an up
        state, so a later blackout in the same gap is an outage of its own, not a continuation of this one."""
        assert prev.outage_start is not None
        downs = [history.get(unit_id(t.id, s), {}).get("down", []) for s in t.vantage.sites]
        for start, end in quorum_spans(downs, t.vantage.quorum):
            if end is not None and start <= prev.outage_start + t.interval and end > prev.outage_start and end <= now:
                self._record(t, Change("outage_ended", prev.outage_start, end, {"replayed": {"state": "up"}}), batch)
                return Combined("up", end, None, None, prev.decided)
        return prev

    def _replayed(self, t, since: float, history: dict, now: float, open_start: float | None = None) -> list[Change]:
        """What the sites saw while no round decided the target (from ``since``): the outages a quorum saw, begun
        and ended meanwhile, each as :func:`decide` would have dated it, and the spans without evidence
        enough (unknown time). Replayed by every round for a while after a gap (the sites' records of the
        gap reach the store with their next cycles); idempotent (outages by start, unknown time by start)."""
        per_site = {s: history.get(unit_id(t.id, s), {}) for s in t.vantage.sites}
        downs = {s: h.get("down", []) for s, h in per_site.items()}
        out = []
        for start, end in quorum_spans(downs.values(), t.vantage.quorum):
            if end is None or end <= since or end > now:
                continue  # open now (this round decides it) or decided already
            if open_start is not None and start <= open_start + t.interval and end > open_start:
                continue  # the outage the last round left open: ended by _close_replayed or by this round
            sites = {s: ({"state": "down", "since": max(a for a, b in spans if a <= start and (b is None or b > start)),
                          "last_cycle": None, "replayed": True}
                         if any(a <= start and (b is None or b > start) for a, b in spans) else
                         {"state": "unknown", "since": None, "last_cycle": None, "replayed": True})
                     for s, spans in downs.items()}
            if (t.id, start) not in self._replayed_outages:
                self._replayed_outages.add((t.id, start))
                log.warning("%s: replaying an outage of %.0f s that %d sites saw while no leader decided (from "
                            "%s)", t.id, end - start, sum(v["state"] == "down" for v in sites.values()), iso(start))
            out += [Change("outage_started", start, None, sites), Change("outage_ended", start, end, sites)]
        spans = unknown_spans([(downs[s], per_site[s].get("unknown", [])) for s in t.vantage.sites],
                              t.vantage.quorum, since, now)
        for start, end in spans:
            out.append(Change("unknown", start, end, {s: {"state": "unknown"} for s in t.vantage.sites}))
        return out

    def round(self, targets: list, states: dict[str, Any], now: float, batch: Batch,
              stored_dark: dict[str, float] | None = None, history: History | None = None) -> None:
        """One consensus round of the leader: combine the sites' views of each multi-site target, decide its state
        and add what changed (states, outages, events) to ``batch``. ``history``: where to read the sites' down
        outages since a time, for targets no round decided for a while (:meth:`_replayed`)."""
        if stored_dark is not None and not self.loaded:
            self.dark = dict(stored_dark)
        self.loaded = True
        raw = {t.id: views_from(states, t.id, t.vantage.sites, now, self.stale_after(t)) for t in targets}
        dark = dark_sites(raw)
        self._report_dark(dark, targets, now, batch)
        prevs = {}
        for t in targets:
            saved = states.get(t.id)
            prevs[t.id] = self._last.get(t.id) or Combined.restore(saved.tracker if saved is not None else None)
        for t in targets:
            p = prevs[t.id]
            if p.decided is not None and now - p.decided > REPLAY_AFTER * self.every:
                # no round decided it for a while: replay from then, in this round and the next ones for as
                # long as the sites' records of the gap may still be on their way to the store
                self._replaying[t.id] = (p.decided, now + self._settle(t) + GAP_FACTOR * t.interval)
        for tid, (_, until) in list(self._replaying.items()):
            if now > until:
                del self._replaying[tid]
                self._replayed_outages = {k for k in self._replayed_outages if k[0] != tid}  # said once per replay
        replay = {t.id: self._replaying[t.id][0] for t in targets if t.id in self._replaying}
        history_now = (history(min(replay.values()) - self._settle_max(targets))
                       if history is not None and replay else {})
        for t in targets:
            views = views_from(states, t.id, t.vantage.sites, now, self.stale_after(t), dark) if dark else raw[t.id]
            prev = opened = prevs[t.id]
            if t.id in replay and prev.outage_start is not None:
                prev = self._close_replayed(t, prev, history_now, now, batch)
            new, changes = decide(prev, views, t.vantage.quorum, now, settle=self._settle(t))
            if t.id in replay:
                # an outage the last round left open is down time until this round's decision ends it: no
                # replayed unknown time inside it
                busy_end = next((ch.end for ch in changes if ch.kind == "outage_ended"), None) \
                    if prev.outage_start is not None else None
                for ch in self._replayed(t, replay[t.id], history_now, now, opened.outage_start):
                    if ch.kind == "unknown" and prev.outage_start is not None:
                        lo = max(ch.start, busy_end) if busy_end is not None else None
                        if lo is None or lo >= (ch.end or lo):
                            continue
                        ch = Change("unknown", lo, ch.end, ch.sites)
                    self._record(t, ch, batch)
            self._last[t.id] = new
            self.views[t.id] = views
            self.contracts[t.id] = t.contract
            self.sites.update(t.vantage.sites)
            for ch in changes:
                self._record(t, ch, batch)
            firsts = [v.first_cycle for v in views if v.first_cycle is not None]
            lasts = [v.last_cycle for v in views if v.last_cycle is not None]
            key = (new.state, new.since, new.outage_start, new.unknown_since)
            written = self._written.get(t.id)
            if written is not None and written[:4] == key and now - written[4] < REFRESH:
                continue  # unchanged since it was last written (measured: bench/consensus_round.py)
            tracker = {**new.snapshot(), "first_cycle": min(firsts) if firsts else None,
                       "last_cycle": max(lasts) if lasts else None}
            batch.states[t.id] = StateRecord(t.id, new.state, new.since, now, tracker)
            self._written[t.id] = (*key, now)

    def _record(self, t, ch, batch: Batch) -> None:
        k, sites = t.vantage.quorum, t.vantage.sites
        if ch.kind == "outage_started":
            seen = sorted(s for s, v in ch.sites.items() if v["state"] == "down")
            cause = f"down from {len(seen)} of {len(sites)} sites ({', '.join(seen)}; quorum {k})"
            evidence = {"first_bad": {"at": ch.start, "reason": cause}, "quorum": k, "sites": ch.sites}
            batch.outages.append(OutageRecord(t.id, t.contract, "down", ch.start, None, evidence))
            batch.events.append(outage_event("outage_started", t.contract, t.id, ch.start, None, cause))
            log.warning("%s is down from %d of %d sites (%s): outage from %s", t.id, len(seen), len(sites),
                        ", ".join(seen), iso(ch.start))
        elif ch.kind == "outage_ended":
            assert ch.end is not None
            batch.outages.append(OutageRecord(t.id, t.contract, "down", ch.start, ch.end,
                                              {"recovered_sites": ch.sites}))
            batch.events.append(outage_event("outage_ended", t.contract, t.id, ch.end, ch.start))
        elif ch.kind == "unknown":
            assert ch.end is not None
            if ch.end > ch.start:
                have = sorted(s for s, v in ch.sites.items() if v["state"] != "unknown")
                batch.unknown.append(UnknownRecord(t.id, ch.start, ch.end,
                                                   f"fewer than quorum {k} sites have evidence (with: "
                                                   f"{', '.join(have) or 'none'})"))

    def _report_dark(self, dark: set[str], targets: list, now: float, batch: Batch) -> None:
        for site in sorted(dark - set(self.dark)):
            self.dark[site] = now
            log.warning("site %s sees every target it probes down while other sites see them up: its own "
                        "monitoring outage, not the customers' (no ticket; its view counts as unknown)", site)
            batch.events.append(BreachEvent("site_outage_started", "*", None, now,
                                            f"site_outage_started:{site}:{int(now * 1000)}",
                                            {"site": site, "start": now}))
        for site in sorted(set(self.dark) - dark):
            start = self.dark.pop(site)
            log.warning("site %s sees its targets again after %.0f s of its own monitoring outage", site, now - start)
            batch.events.append(BreachEvent("site_outage_ended", "*", None, now,
                                            f"site_outage_ended:{site}:{int(start * 1000)}",
                                            {"site": site, "start": start, "end": now}))
        for site, start in self.dark.items():  # the site's own view of each target is unknown meanwhile
            for t in targets:
                if site in t.vantage.sites:
                    batch.unknown.append(UnknownRecord(unit_id(t.id, site), start, now,
                                                       f"site {site} monitoring outage (its uplink)"))


def open_site_outages(events) -> dict[str, float]:
    """Sites whose monitoring outage has started and not ended, from stored events."""
    out: dict[str, float] = {}
    for e in sorted(events, key=lambda e: e.at):
        if e.kind == "site_outage_started":
            out[e.data["site"]] = e.data.get("start", e.at)
        elif e.kind == "site_outage_ended":
            out.pop(e.data["site"], None)
    return out
