"""N-of-M vantage consensus: a target probed from several sites is down only when ``quorum`` of them see it down.

A target with ``vantage: {sites: [a, b, c], quorum: 2}`` becomes one *probe unit* per site (``t1@a``,
``t1@b``, ``t1@c``). Each unit is owned by one live node of its site and runs the ordinary per-target path:
its cycles, state, per-site outages, unknown time (a node's gap is that site's unknown time) and rollups
are stored under the unit's name. A unit opens no ticket.

The leader combines the units' states into the target's own state (:func:`decide`, pure), as proven by
the evidence at hand, with ``k = quorum``:

* **down** when at least ``k`` sites see it down; the outage is dated from the first bad cycle by which
  ``k`` sites saw it down together (the k-th earliest of their backdated first bad cycles);
* **up** when fewer than ``k`` sites could see it down even if every site without evidence did
  (``down + unknown < k``); an outage ends when the down sites fell below ``k`` (the recovery that did it);
* otherwise **unknown**: no evidence either way; recorded as the target's unknown time.

A site without evidence for a unit: its node's last cycle is older than ``stale_after`` (no live node of
the site, a takeover in progress), its unit state is unknown, or the site is *dark*.

**Dark sites** (:func:`dark_sites`): a site that sees every one of its (two or more) fresh units down while
another site sees at least one of those targets up has lost its own uplink: its views count as no evidence,
and the leader reports the site's monitoring outage (events ``site_outage_started``/``_ended``, the log,
``slawatch cluster status``). It opens no customer ticket.
"""

from __future__ import annotations

from collections.abc import Set

from dataclasses import dataclass, field
from typing import Any, Iterable

__all__ = ["Unit", "SiteView", "Combined", "Change", "multi_site", "probe_units", "unit_id", "decide", "dark_sites", "views_from",
           "quorum_spans", "unknown_spans"]

from monitor.config.sites import multi_site, unit_id  # noqa: E402 (below the layers that need them)


@dataclass(frozen=True, slots=True)
class Unit:
    """What one node probes: a target, or one site's view of a multi-site target."""

    target: Any  # the config Target, with the unit's id
    parent: str  # the config target's id
    site: str | None  # the site of a multi-site target's unit
    #: the sites allowed to own it (None: any live node)
    sites: tuple[str, ...] | None

    @property
    def id(self) -> str:
        """The probe unit's id: the target's id, or ``target@site`` for one site's view of a multi-site target."""
        return self.target.id


def probe_units(targets: Iterable[Any]) -> dict[str, Unit]:
    """The probe units of the config's targets: a target with several vantage sites gives one per site."""
    targets = list(targets)
    several = {t.id for t in multi_site(targets)}
    out: dict[str, Unit] = {}
    for t in targets:
        if t.id in several:
            for site in t.vantage.sites:
                uid = unit_id(t.id, site)
                out[uid] = Unit(t.model_copy(update={"id": uid}), t.id, site, (site,))
        else:
            out[t.id] = Unit(t, t.id, None, tuple(t.vantage.sites) if t.vantage is not None else None)
    return out


@dataclass(frozen=True, slots=True)
class SiteView:
    """One site's view of a target: ``up``, ``down`` or ``unknown``; ``since``: when that began (a down state's
    first bad cycle)."""

    site: str
    state: str
    since: float | None = None
    last_cycle: float | None = None
    first_cycle: float | None = None
    #: an up site in a run of bad cycles not yet long enough to call it down: the run's first bad cycle
    suspect_since: float | None = None


@dataclass(slots=True)
class Combined:
    """The target's consensus state, kept in its ``target_state`` row (``tracker``)."""

    state: str = "unknown"
    since: float | None = None
    outage_start: float | None = None
    unknown_since: float | None = None
    #: the time of the last round that decided it (a later round after a gap replays the sites' outages)
    decided: float | None = None

    def snapshot(self) -> dict[str, Any]:
        """The combined state as stored in the target's tracker (restored after a restart or takeover)."""
        return {"state": self.state, "since": self.since, "outage_start": self.outage_start,
                "unknown_since": self.unknown_since, "decided": self.decided, "consensus": True}

    @classmethod
    def restore(cls, data: dict | None) -> "Combined":
        """The combined state from a stored tracker; a fresh one when the tracker holds none."""
        if not data or not data.get("consensus"):
            return cls()
        return cls(data.get("state", "unknown"), data.get("since"), data.get("outage_start"), data.get("unknown_since"),
                   data.get("decided"))


@dataclass(frozen=True, slots=True)
class Change:
    """``outage_started`` (start), ``outage_ended`` (start, end) or ``unknown`` (start, end: the span without
    evidence so far, extended while it lasts)."""

    kind: str
    start: float
    end: float | None = None
    sites: dict[str, dict] = field(default_factory=dict)


def views_from(states: dict[str, Any], target: str, sites: Iterable[str], now: float, stale_after: float,
               dark: Set[str] = frozenset()) -> list[SiteView]:
    """Each site's view of ``target`` from the units' stored states (``StateRecord``s by name)."""
    out = []
    for site in sites:
        st = states.get(unit_id(target, site))
        tracker = st.tracker if st is not None else {}
        last = tracker.get("last_cycle")
        state = st.state if st is not None else "unknown"
        fresh = last is not None and now - last <= stale_after
        if site in dark or not fresh:
            view = "unknown"
        else:
            view = {"up": "up", "degraded": "up", "down": "down"}.get(state, "unknown")
        suspect = tracker.get("fail_start") if view == "up" and tracker.get("fail_run") else None
        out.append(SiteView(site, view, st.since if st is not None else None, last, tracker.get("first_cycle"),
                            suspect))
    return out


def _evidence(views: list[SiteView]) -> dict[str, dict]:
    return {v.site: {"state": v.state, "since": v.since, "last_cycle": v.last_cycle} for v in views}


def decide(prev: Combined, views: list[SiteView], quorum: int, now: float,
           settle: float = 0.0) -> tuple[Combined, list[Change]]:
    """The next consensus state of one target and what changed (pure).

    An outage's start waits for the sites still in a run of bad cycles (for up to ``settle`` seconds from
    that run's first bad cycle, the time the site needs to confirm or clear it): one of them may have seen the
    first bad cycle earlier than the sites that confirmed already, and the start is dated by them all."""
    down = sorted(v.since if v.since is not None else now for v in views if v.state == "down")
    unknown = sum(1 for v in views if v.state == "unknown")
    changes: list[Change] = []
    new = Combined(prev.state, prev.since, prev.outage_start, prev.unknown_since, now)
    if len(down) >= quorum:
        state = "down"
    elif len(down) + unknown < quorum:
        state = "up"
    else:
        state = "unknown"
    evidence = _evidence(views)
    if state != "unknown" and prev.unknown_since is not None:
        changes.append(Change("unknown", prev.unknown_since, now, evidence))
        new.unknown_since = None
    if state == "down":
        suspects = [v.suspect_since for v in views if v.suspect_since is not None and now - v.suspect_since <= settle]
        if prev.outage_start is None and suspects and min(suspects) < down[quorum - 1]:
            return new, changes  # not yet: a site may still date it earlier
        if prev.outage_start is None:
            start = down[quorum - 1]  # the k-th earliest first bad cycle: k sites saw it down together from here
            new.outage_start = start
            new.state, new.since = "down", start
            changes.append(Change("outage_started", start, None, evidence))
    elif state == "up":
        if prev.outage_start is not None:
            # the recovery that left fewer than k sites down: walk the recoveries in time order
            recoveries = sorted(v.since for v in views if v.state == "up" and v.since is not None
                                and v.since >= prev.outage_start)
            end = now
            for i, at in enumerate(recoveries, 1):
                if len(down) + len(recoveries) - i < quorum:
                    end = at
                    break
            end = max(end, prev.outage_start)
            changes.append(Change("outage_ended", prev.outage_start, end, evidence))
            new.outage_start = None
            new.state, new.since = "up", end
        elif prev.state != "up":
            ups = [v.since for v in views if v.state == "up" and v.since is not None]
            new.state, new.since = "up", max(ups) if ups else now
    else:  # no evidence either way: an open outage stays open (its end is not known), the time is unknown
        if new.unknown_since is None:
            new.unknown_since = now
        changes.append(Change("unknown", new.unknown_since, now, evidence))
        if prev.outage_start is None:
            new.state, new.since = "unknown", new.unknown_since
    return new, changes


def dark_sites(views_by_target: dict[str, list[SiteView]], minimum: int = 2) -> set[str]:
    """Sites that see every one of their (at least ``minimum``) units down while another site sees at least one
    of those targets up: the site's own uplink, not the customers."""
    by_site: dict[str, list[tuple[str, SiteView]]] = {}
    for target, views in views_by_target.items():
        for v in views:
            if v.state != "unknown":
                by_site.setdefault(v.site, []).append((target, v))
    dark = set()
    for site, seen in by_site.items():
        if len(seen) < minimum or any(v.state != "down" for _, v in seen):
            continue
        if any(o.state == "up" for target, _ in seen for o in views_by_target[target] if o.site != site):
            dark.add(site)
    return dark


def quorum_spans(downs: Iterable[Iterable[tuple[float, float | None]]], quorum: int) -> list[tuple[float, float | None]]:
    """The spans in which at least ``quorum`` sites saw the target down, from each site's down outages (one
    iterable per site; an open outage's end is None), oldest first: a span starts at the first bad cycle by which
    ``quorum`` sites saw it down together (as :func:`decide` dates it) and ends when fewer than ``quorum`` did
    (None: not yet). This is what a leader replays for the time no leader decided (a takeover, a store outage),
    so an outage the sites saw then is not lost."""
    points: list[tuple[float, int]] = []
    for site in downs:
        merged: list[tuple[float, float | None]] = []
        for s, e in sorted(site, key=lambda x: x[0]):
            if merged and (merged[-1][1] is None or s <= merged[-1][1]):
                last_end = merged[-1][1]
                merged[-1] = (merged[-1][0], None if e is None or last_end is None else max(last_end, e))
            else:
                merged.append((s, e))
        for s, e in merged:
            points.append((s, 1))
            if e is not None:
                points.append((e, -1))
    points.sort(key=lambda p: (p[0], p[1]))  # at one instant a recovery counts before a new bad cycle
    out: list[tuple[float, float | None]] = []
    count, start = 0, None
    for at, step in points:
        count += step
        if step > 0 and count == quorum:
            start = at
        elif step < 0 and count == quorum - 1 and start is not None:
            out.append((start, at))
            start = None
    if start is not None:
        out.append((start, None))
    return out


def unknown_spans(sites: Iterable[tuple[Iterable[tuple[float, float | None]], Iterable[tuple[float, float]]]],
                  quorum: int, lo: float, hi: float) -> list[tuple[float, float]]:
    """The spans of [lo, hi) in which the sites' evidence proves neither up nor down, as :func:`decide` judges
    it (down + without evidence >= quorum, down < quorum), from each site's (down outages, unknown intervals):
    replayed for the time no leader decided, so a span without evidence is not left to count as up."""
    per_site = [([(s, hi if e is None else e) for s, e in downs], list(unknowns)) for downs, unknowns in sites]
    cuts = sorted({lo, hi} | {x for downs, unk in per_site for span in (*downs, *unk) for x in span if lo < x < hi})
    out: list[tuple[float, float]] = []
    for a, b in zip(cuts, cuts[1:]):
        mid = (a + b) / 2
        down = sum(any(s <= mid < e for s, e in downs) for downs, _ in per_site)
        dark = sum(not any(s <= mid < e for s, e in downs) and any(s <= mid < e for s, e in unk)
                   for downs, unk in per_site)
        if down < quorum <= down + dark:
            if out and out[-1][1] == a:
                out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
    return out
