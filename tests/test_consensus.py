"""N-of-M vantage consensus, the pure part: hand-made views of three sites against hand-computed outcomes."""

from __future__ import annotations

from monitor.cluster.consensus import Combined, SiteView, dark_sites, decide, probe_units, views_from
from monitor.store import StateRecord


def v(site, state, since=None):
    return SiteView(site, state, since, last_cycle=1000.0)


def test_down_only_when_quorum_sites_see_it_down_dated_from_the_quorums_first_bad_cycle():
    prev = Combined("up", 0.0)
    one, changes = decide(prev, [v("a", "down", 100), v("b", "up", 0), v("c", "up", 0)], 2, 120)
    assert one.state == "up" and changes == []  # one site alone is no outage
    two, changes = decide(one, [v("a", "down", 100), v("b", "down", 103), v("c", "down", 110)], 2, 130)
    assert two.state == "down" and two.outage_start == 103  # a and b together from b's first bad cycle
    assert [(c.kind, c.start) for c in changes] == [("outage_started", 103)]
    assert changes[0].sites["c"] == {"state": "down", "since": 110, "last_cycle": 1000.0}


def test_an_outage_ends_with_the_recovery_that_leaves_fewer_than_quorum_sites_down():
    down = Combined("down", 103, outage_start=103)
    # c recovered at 200 (a and b still down: still an outage), b at 210: one left, below 2
    same, changes = decide(down, [v("a", "down", 100), v("b", "down", 103), v("c", "up", 200)], 2, 205)
    assert same.outage_start == 103 and changes == []
    up, changes = decide(same, [v("a", "down", 100), v("b", "up", 210), v("c", "up", 200)], 2, 215)
    assert up.state == "up" and up.outage_start is None
    assert [(c.kind, c.start, c.end) for c in changes] == [("outage_ended", 103, 210)]


def test_without_enough_evidence_the_time_is_unknown_never_up_or_down():
    prev = Combined("up", 0.0)
    # b has no evidence: with a down, two sites *could* see it down; neither proven
    unknown, changes = decide(prev, [v("a", "down", 100), v("b", "unknown"), v("c", "up", 0)], 2, 150)
    assert unknown.state == "unknown" and unknown.unknown_since == 150
    assert [(c.kind, c.start, c.end) for c in changes] == [("unknown", 150, 150)]
    later, changes = decide(unknown, [v("a", "down", 100), v("b", "unknown"), v("c", "up", 0)], 2, 170)
    assert [(c.kind, c.start, c.end) for c in changes] == [("unknown", 150, 170)]  # extended
    back, changes = decide(later, [v("a", "up", 175), v("b", "unknown"), v("c", "up", 0)], 2, 180)
    assert back.state == "up" and [(c.kind, c.start, c.end) for c in changes] == [("unknown", 150, 180)]


def test_a_site_that_sees_everything_down_while_others_see_it_up_is_dark():
    views = {t: [v("a", "down", 100), v("b", "up", 0), v("c", "up", 0)] for t in ("t1", "t2", "t3")}
    assert dark_sites(views) == {"a"}
    # every site sees every target down: the customers', not a site's
    views = {t: [v("a", "down", 100), v("b", "down", 101), v("c", "down", 102)] for t in ("t1", "t2")}
    assert dark_sites(views) == set()
    # a site with one target cannot tell its uplink from the customer
    assert dark_sites({"t1": [v("a", "down", 100), v("b", "up", 0)]}) == set()
    # a site that still sees one target up is not dark
    views = {"t1": [v("a", "down", 100), v("b", "up", 0)], "t2": [v("a", "up", 0), v("b", "up", 0)]}
    assert dark_sites(views) == set()


def test_views_from_stored_unit_states_stale_and_dark_are_no_evidence():
    states = {
        "t1@a": StateRecord("t1@a", "down", 100.0, 400.0, {"last_cycle": 400.0, "first_cycle": 1.0}),
        "t1@b": StateRecord("t1@b", "up", 0.0, 100.0, {"last_cycle": 100.0}),  # stale: 300 s old
        "t1@c": StateRecord("t1@c", "degraded", 50.0, 400.0, {"last_cycle": 400.0}),
    }
    views = views_from(states, "t1", ["a", "b", "c", "d"], 401.0, stale_after=60.0)
    assert [(x.site, x.state) for x in views] == [("a", "down"), ("b", "unknown"), ("c", "up"), ("d", "unknown")]
    dark = views_from(states, "t1", ["a", "c"], 401.0, stale_after=60.0, dark={"a"})
    assert [(x.site, x.state) for x in dark] == [("a", "unknown"), ("c", "up")]


def test_a_multi_site_target_is_one_probe_unit_per_site():
    from monitor.config import parse_config

    cfg = parse_config({
        "cluster": {"node": "n1", "site": "a"}, "storage": {"backend": "postgresql", "dsn": "postgresql://x@127.0.0.1/x"},
        "contracts": [{"id": "c1", "customer": "A", "provider": "B", "objectives": {"availability": "99.9%"}}],
        "targets": [{"id": "t1", "contract": "c1", "kind": "internet", "address": "127.0.0.1",
                     "vantage": {"sites": ["a", "b", "c"], "quorum": 2}},
                    {"id": "t2", "contract": "c1", "kind": "internet", "address": "127.0.0.2", "vantage": {"sites": ["b"]}},
                    {"id": "t3", "contract": "c1", "kind": "internet", "address": "127.0.0.3"}]})
    units = probe_units(cfg.targets)
    assert {uid: (u.parent, u.site, u.sites) for uid, u in units.items()} == {
        "t1@a": ("t1", "a", ("a",)), "t1@b": ("t1", "b", ("b",)), "t1@c": ("t1", "c", ("c",)),
        "t2": ("t2", None, ("b",)), "t3": ("t3", None, None)}
    assert units["t1@b"].target.address == "127.0.0.1" and units["t1@b"].id == "t1@b"


def test_the_start_waits_for_a_site_still_confirming_an_earlier_first_bad_cycle():
    """c saw its first bad cycle at 101 but needs another bad cycle to call it down; a and b confirmed (100, 103).
    Deciding now would date the outage 103; waiting for c dates it 101, the second of the three."""
    prev = Combined("up", 0.0)
    views = [v("a", "down", 100), v("b", "down", 103), SiteView("c", "up", 0, 1000.0, suspect_since=101)]
    held, changes = decide(prev, views, 2, 104, settle=5)
    assert held.outage_start is None and changes == []
    down, changes = decide(held, [v("a", "down", 100), v("b", "down", 103), v("c", "down", 101)], 2, 105, settle=5)
    assert [(c.kind, c.start) for c in changes] == [("outage_started", 101)]
    # a suspect whose run is older than the settle time (its node died mid-run) no longer holds it back
    late, changes = decide(prev, views, 2, 110, settle=5)
    assert [(c.kind, c.start) for c in changes] == [("outage_started", 103)]


def test_a_sites_up_is_evidence_only_for_its_cycles_slot():
    """#33: a site whose node died keeps an "up" view only until its last cycle's slot has ended (1.5 intervals,
    plus the probes' worst case and the writer's flush for the next result to reach the store), not for a
    failover delay: blacked out from both sites, one site's node killed, the target is unknown, not up, from
    then until the other site's quorum can decide (it counted a 14 s old "up" at 2 s / 10 s)."""
    from monitor.cluster.vantage import ConsensusKeeper
    from monitor.config import parse_config

    config = parse_config({
        "cluster": {"node": "n1", "site": "a", "heartbeat": "1s", "failover_delay": "10s"},
        "storage": {"backend": "postgresql", "dsn": "postgresql://x@127.0.0.1/x", "flush_interval": "500ms"},
        "contracts": [{"id": "c1", "customer": "A", "provider": "B", "objectives": {"availability": "99.9%"}}],
        "targets": [{"id": "t1", "contract": "c1", "kind": "internet", "address": "127.0.0.1", "interval": "2s",
                     "probes": {"icmp": {"count": 1, "timeout": "300ms"}}, "vantage": {"sites": ["a", "b"], "quorum": 2}}],
    })
    target = config.targets[0]
    keeper = ConsensusKeeper(10.0, config.storage.flush_interval)
    stale = keeper.stale_after(target)
    assert stale == 1.5 * 2 + 0.3 + 0.5  # the slot, the probe's worst case, the flush: not the failover delay
    killed = 1000.0  # site a's node dies; its last cycle started 0.5 s before, up
    states = {"t1@a": StateRecord("t1@a", "up", 0.0, killed, {"last_cycle": killed - 0.5}),
              "t1@b": StateRecord("t1@b", "down", killed - 1.1, killed + 3, {"last_cycle": killed + 2.9})}
    fresh = views_from(states, "t1", ["a", "b"], killed + 3.0, stale)
    assert [x.state for x in fresh] == ["up", "down"]  # a's last cycle still within its slot
    later = views_from(states, "t1", ["a", "b"], killed + 4.0, stale)
    assert [x.state for x in later] == ["unknown", "down"]  # past it: no evidence, never up
    combined, changes = decide(Combined("up", 0.0), later, 2, killed + 4.0)
    assert combined.state == "unknown" and [c.kind for c in changes] == ["unknown"]


def test_quorum_spans_date_like_decide_and_end_when_fewer_than_quorum_remain():
    from monitor.cluster.consensus import quorum_spans

    # a down 100-150 and 160-170, b down 103-140, c down 110-open: 2 of 3 together 103-150, again 160-170
    spans = quorum_spans([[(100, 150), (160, 170)], [(103, 140)], [(110, None)]], 2)
    assert spans == [(103, 150), (160, 170)]
    assert quorum_spans([[(100, 150)], [(103, 140)], [(110, None)]], 3) == [(110, 140)]
    assert quorum_spans([[(100, None)], [(103, None)]], 2) == [(103, None)]  # open: not over yet
    assert quorum_spans([[(100, 120)], [(120, 130)]], 2) == []  # a recovery and a first bad cycle at one instant
    assert quorum_spans([[(100, 120), (110, 125)], [(105, 200)]], 2) == [(105, 125)]  # overlapping runs of a site


def _two_sites():
    """A target probed from sites a and b (quorum 2, interval 1 s, threshold 2) and a leader's keeper (failover
    delay 3 s, rounds every 0.5 s)."""
    from types import SimpleNamespace

    from monitor.cluster.vantage import ConsensusKeeper

    t = SimpleNamespace(id="t1", contract="c1", interval=1.0, failure_threshold=2,
                        vantage=SimpleNamespace(sites=["a", "b"], quorum=2), worst_case=lambda: (0.3,))
    return t, ConsensusKeeper(3.0, 0.2, every=0.5)


def test_a_round_after_a_gap_replays_the_outage_the_sites_saw_meanwhile():
    """A takeover (or the store out of reach) left the target undecided while a quorum of sites saw it down and
    up again: the next round records that outage as decide would have dated it, and its end, once."""
    from monitor.store import Batch

    t, keeper = _two_sites()
    up = {u: StateRecord(u, "up", 0.0, 1000.0, {"last_cycle": 1000.0}) for u in ("t1@a", "t1@b")}
    first = Batch()
    keeper.round([t], up, 1000.0, first, history=lambda since: {})
    assert first.outages == []
    later = {u: StateRecord(u, "up", 1012.0, 1020.0, {"last_cycle": 1020.0}) for u in ("t1@a", "t1@b")}
    asked = []

    def history(since):
        asked.append(since)
        return {"t1@a": {"down": [(1003.2, 1011.0)]},
                "t1@b": {"down": [(1004.1, 1012.0)], "unknown": [(1014.0, 1017.0)]}}

    batch = Batch()
    keeper.round([t], later, 1020.5, batch, history=history)
    assert asked and asked[0] <= 1000.0
    assert [(o.start, o.end) for o in batch.outages] == [(1004.1, None), (1004.1, 1011.0)]
    assert [e.kind for e in batch.events] == ["outage_started", "outage_ended"]
    assert batch.unknown == []  # b without evidence while a saw it up: up (one of two sites can prove it)
    # the next rounds replay the gap again while the sites' records of it may still arrive: the same records
    # (outages by their start, unknown time by its start), nothing new
    again = Batch()
    keeper.round([t], later, 1021.0, again, history=history)
    assert [(o.start, o.end) for o in again.outages] == [(1004.1, None), (1004.1, 1011.0)] and len(asked) == 2
    for i in range(1, 21):  # rounds every 0.5 s: the replay window (settle + a slot) ends by 1028
        keeper.round([t], later, 1021.0 + i / 2, Batch(), history=history)
    n = len(asked)
    last = Batch()
    keeper.round([t], later, 1031.5, last, history=history)
    assert last.outages == [] and len(asked) == n and 2 < n < 2 + 16


def test_unknown_spans_are_what_decide_would_call_unknown():
    from monitor.cluster.consensus import unknown_spans

    # two sites, quorum 2: both without evidence 10-12, a down and b without 14-15, one without only 16-18
    sites = [([(14.0, 15.0)], [(10.0, 12.0), (16.0, 18.0)]), ([], [(9.0, 12.0), (13.0, 15.5)])]
    assert unknown_spans(sites, 2, 10.0, 20.0) == [(10.0, 12.0), (14.0, 15.0)]
    # quorum 1 of 2: up needs both up; one site without evidence is unknown, a site down is an outage
    assert unknown_spans(sites, 1, 10.0, 20.0) == [(10.0, 12.0), (13.0, 14.0), (15.0, 15.5), (16.0, 18.0)]


def test_a_gap_after_an_outage_the_last_round_left_open_is_unknown_after_the_outage_ends():
    """The store went away just as the sites recovered: the next round ends the open outage at the recovery
    (decide) and replays the sites' span without evidence after it as unknown time, not up."""
    from monitor.store import Batch

    t, keeper = _two_sites()
    down = {u: StateRecord(u, "down", 1004.0, 1006.0, {"last_cycle": 1006.0}) for u in ("t1@a", "t1@b")}
    first = Batch()
    keeper.round([t], down, 1006.0, first, history=lambda since: {})
    assert [(o.start, o.end) for o in first.outages] == [(1004.0, None)]
    back = {u: StateRecord(u, "up", 1010.0, 1019.5, {"last_cycle": 1019.5}) for u in ("t1@a", "t1@b")}
    history = {"t1@a": {"down": [(1004.0, 1010.0)], "unknown": [(1012.0, 1017.0)]},
               "t1@b": {"down": [(1004.0, 1010.0)], "unknown": [(1012.5, 1017.0)]}}
    batch = Batch()
    keeper.round([t], back, 1020.0, batch, history=lambda since: history)
    assert [(o.start, o.end) for o in batch.outages] == [(1004.0, 1010.0)]  # ended by decide, not replayed twice
    assert [(u.start, u.end) for u in batch.unknown] == [(1012.5, 1017.0)]  # both sites without evidence


def test_two_blackouts_in_one_gap_after_an_open_outage_are_two_outages():
    """The last round left an outage open; while no round decided, the sites recovered and a second blackout
    began: the first outage ends at the recovery, and the second is an outage of its own (not one outage over
    both blackouts and the up time between them)."""
    from monitor.store import Batch

    t, keeper = _two_sites()
    down = {u: StateRecord(u, "down", 1004.0, 1006.0, {"last_cycle": 1006.0}) for u in ("t1@a", "t1@b")}
    keeper.round([t], down, 1006.0, Batch(), history=lambda since: {})
    again = {u: StateRecord(u, "down", 1020.0, 1025.5, {"last_cycle": 1025.5}) for u in ("t1@a", "t1@b")}
    history = {"t1@a": {"down": [(1004.0, 1010.0), (1020.0, None)]},
               "t1@b": {"down": [(1004.0, 1011.0), (1020.5, None)]}}
    batch = Batch()
    keeper.round([t], again, 1026.0, batch, history=lambda since: history)
    assert [(o.start, o.end) for o in batch.outages] == [(1004.0, 1010.0), (1020.0, None)]
    assert [e.kind for e in batch.events] == ["outage_ended", "outage_started"]
