"""The ticket ledger: lifecycle, dedup, flap merge, grouping, escalation under a controllable clock."""

from __future__ import annotations


import pytest

from monitor.config import parse_config
from monitor.events import budget_burn_event, outage_event
from monitor.store import Batch
from monitor.tickets.ledger import Ledger, TicketError, list_tickets, response_times, ticket_timeline

T0 = 1_795_000_000.0


def config(**contract_extra):
    return parse_config({
        "contracts": [{
            "id": "c1", "customer": "A", "provider": "B", "objectives": {"availability": "99.9%"},
            "escalation": [{"tier": 1, "after": "0s", "sinks": ["noc"]},
                           {"tier": 2, "after": "30m", "sinks": ["oncall"], "recipients": ["oncall@example.net"]},
                           {"tier": 3, "after": "2h", "sinks": ["mgmt"]}],
            "response_targets": {"critical": {"acknowledge": "15m", "resolve": "4h"}},
            **contract_extra,
        }],
        "targets": [{"id": f"t{i}", "contract": "c1", "kind": "internet", "address": "127.0.0.1"} for i in range(600)],
        "ticket_sinks": [{"name": n, "type": "webhook", "url": "http://127.0.0.1:9/"} for n in ("noc", "oncall", "mgmt")],
    })


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def env(every_store):
    def make(**extra):
        cfg = config(**extra)
        store = every_store()
        clock = Clock(T0)
        ledger = Ledger(cfg, clock)

        def emit(*events):
            store.write(Batch(events=list(events)), on_new_event=ledger.apply)

        return store, ledger, clock, emit

    return make


def outbox(store):
    return [(o.sink, o.action, o.delivered) for o in store.outbox()]


def test_open_update_resolve(env):
    store, ledger, clock, emit = env()
    emit(outage_event("outage_started", "c1", "t1", T0, None))
    [t] = list_tickets(store)
    assert (t.state, t.severity, t.kind, t.tier, t.targets, t.title) == ("open", "critical", "outage", 1, ["t1"], "t1 is down")
    emit(outage_event("outage_started", "c1", "t1", T0, None))  # the same event replayed: ignored
    assert len(list_tickets(store)) == 1 and len(ticket_timeline(store, t.id)) == 2  # opened + escalated
    clock.t = T0 + 2700
    emit(outage_event("outage_ended", "c1", "t1", T0 + 2700, T0))
    [t] = list_tickets(store)
    assert t.state == "resolved" and t.resolved == T0 + 2700
    timeline = ticket_timeline(store, t.id)
    assert timeline[-1][1] == "recovered" and "after 45m" in timeline[-1][2]
    assert [(r[0], r[1]) for r in outbox(store)] == [("noc", "open"), ("noc", "resolve")]


def test_repeat_of_an_open_incident_updates_it(env):
    store, ledger, clock, emit = env()
    emit(budget_burn_event("c1", "t1", "2026-11", "page", 3600, 20.0, T0))
    emit(budget_burn_event("c1", "t1", "2026-11", "page", 21600, 7.0, T0 + 60))
    [t] = list_tickets(store)
    assert t.severity == "major" and [k for _, k, _ in ticket_timeline(store, t.id)] == ["opened", "escalated", "repeat"]


def test_flap_within_the_merge_window_reopens_the_same_ticket(env):
    store, ledger, clock, emit = env(ticket_merge_window="10m")
    emit(outage_event("outage_started", "c1", "t1", T0, None))
    emit(outage_event("outage_ended", "c1", "t1", T0 + 300, T0))
    emit(outage_event("outage_started", "c1", "t1", T0 + 600, None))  # 5 min after recovery
    [t] = list_tickets(store)
    assert t.state == "open" and "reopened" in [k for _, k, _ in ticket_timeline(store, t.id)]
    emit(outage_event("outage_ended", "c1", "t1", T0 + 900, T0 + 600))
    emit(outage_event("outage_started", "c1", "t1", T0 + 900 + 3600, None))  # an hour later: a new ticket
    assert [t.state for t in list_tickets(store)] == ["resolved", "open"]


def test_comment_only_contract_leaves_resolution_to_a_person(env):
    store, ledger, clock, emit = env(auto_resolve=False)
    emit(outage_event("outage_started", "c1", "t1", T0, None))
    emit(outage_event("outage_ended", "c1", "t1", T0 + 60, T0))
    [t] = list_tickets(store)
    assert t.state == "open"
    t = ledger.resolve(store, t.id, "alice")
    assert t.state == "resolved"
    with pytest.raises(TicketError, match="already resolved"):
        ledger.resolve(store, t.id, "alice")


def test_escalation_timing_and_acknowledgement(env):
    store, ledger, clock, emit = env()
    emit(outage_event("outage_started", "c1", "t1", T0, None))
    [t] = list_tickets(store)
    for minutes, tier in ((29, 1), (30, 2), (119, 2), (120, 3), (500, 3)):
        ledger.escalate(store, T0 + minutes * 60)
        assert list_tickets(store)[0].tier == tier, minutes
    assert [r[0] for r in outbox(store)] == ["noc", "oncall", "mgmt"]
    recipients = next(o.recipients for o in store.outbox() if o.sink == "oncall")
    assert recipients == ["oncall@example.net"]

    # a second ticket acknowledged at 10 min never reaches tier 2
    emit(outage_event("outage_started", "c1", "t2", T0, None))
    second = list_tickets(store)[1]
    ledger.acknowledge(store, second.id, "bob", T0 + 600)
    ledger.escalate(store, T0 + 3 * 3600)
    second = list_tickets(store)[1]
    assert second.state == "acknowledged" and second.tier == 1
    rt = response_times(second, ledger.contracts["c1"])
    assert rt["acknowledge_s"] == 600 and rt["acknowledge_met"] is True and rt["resolve_met"] is None


def test_burst_of_500_outages_is_grouped_and_none_is_lost(env):
    store, ledger, clock, emit = env(grouping={"min_targets": 3, "window": "2m"})
    emit(*[outage_event("outage_started", "c1", f"t{i}", T0 + i * 0.1, None) for i in range(500)])
    tickets = list_tickets(store)
    parents = [t for t in tickets if t.parent_id is None]
    children = [t for t in tickets if t.parent_id is not None]
    assert len(parents) == 1 and len(children) == 500
    assert sorted(parents[0].targets, key=lambda x: int(x[1:])) == [f"t{i}" for i in range(500)]
    # only the parent goes out: one open, then updates for the targets that joined later
    opens = [r for r in outbox(store) if r[1] == "open"]
    assert len(opens) == 1
    # everything recovers: the parent resolves with the last child
    emit(*[outage_event("outage_ended", "c1", f"t{i}", T0 + 600, T0 + i * 0.1) for i in range(500)])
    assert all(t.state == "resolved" for t in list_tickets(store))
