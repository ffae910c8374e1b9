"""Cluster membership: leases, fencing epochs, sharding by rendezvous hashing, and one leader.

Several slawatch nodes share one PostgreSQL store; no other coordination service.

* **Membership.** A node joins under its ``cluster.node`` name with a new *epoch* (a fencing token) and
  renews its lease every ``heartbeat`` in ``cluster_nodes``. Liveness is judged on the database's clock:
  a node whose heartbeat is older than ``failover_delay`` is dead. A name held by another live instance
  is refused (:class:`~monitor.errors.ClusterError`).
* **Fencing.** Every batch a node writes carries its lease (node, instance, epoch); the store commits it
  only while that lease is unexpired (``FencedError`` otherwise, and the batch is dropped). A node that
  cannot renew its lease stops probing one heartbeat before it expires, so the node that takes its targets
  over (once the lease *has* expired) never probes them in the same slot. An expired lease is never renewed:
  the node rejoins under a new epoch and waits two heartbeats, so every other node sees it before it probes.
* **Sharding.** Each probe unit (a target, or one site's view of a target with several vantage sites:
  :mod:`monitor.cluster.consensus`) is owned by one live node among the nodes allowed to probe it (its site, its
  ``vantage.sites``, or every site): the node with the highest rendezvous hash of (node, target). A join
  or a death moves only the targets that node gains or had, about 1/N. The gap while a dead node's targets
  move is unknown time (the new owner's first cycle comes more than 1.5 intervals after the last stored
  one), never downtime and never up.
* **Leader.** One node holds the leader *lease* and runs the cluster-wide work: SLA evaluation, ticket
  escalation and delivery, monthly reports, retention. The lease is a row whose expiry is a timestamp in the
  database's clock (``failover_delay`` ahead), renewed at every heartbeat; a new holder gets a new *term*
  (a fencing token that only grows). The holder counts its lease from the moment it *sent* the renewal, on
  its own monotonic clock, and stops leading one heartbeat before that can run out: a leader cut from the
  database, paused or stuck in a hung call steps down by itself before any other node can take the lease,
  and takes it back only under a new term. Nothing depends on the server noticing a dead session (an
  advisory lock held a cut leader's place for the server's TCP keepalive time: 2 h 11 min by default).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Callable

from monitor.errors import ClusterError, StoreError
from monitor.store.base import Fence, NodeInfo

__all__ = ["ClusterMember", "owner_of", "config_hash"]

log = logging.getLogger("slawatch.cluster")


def _score(node: str, target: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{node}\0{target}".encode(), digest_size=8).digest(), "big")


def owner_of(target: str, nodes: list[str]) -> str | None:
    """The rendezvous (highest random weight) owner of ``target`` among ``nodes``."""
    return max(nodes, key=lambda n: (_score(n, target), n)) if nodes else None


#: config sections that are each node's own: where it listens, how it logs, how it reaches the database
NODE_LOCAL = ("exporter", "logging", "storage")


def config_hash(config: Any) -> str:
    """A digest of the parsed config as every node should have it: the node's own name and site, its
    node-local sections (:data:`NODE_LOCAL`) and the secrets (pydantic shows them masked) left out, so a node
    with other targets, contracts, sinks or reports stands out in ``cluster status``."""
    import json

    data = {k: v for k, v in config.model_dump(mode="json").items() if k not in NODE_LOCAL}
    if isinstance(data.get("cluster"), dict):
        data["cluster"] = {k: v for k, v in data["cluster"].items() if k not in ("node", "site")}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


class ClusterMember:
    """This node's membership, run by a thread of its own so a slow database never delays probing."""

    def __init__(self, cluster_cfg: Any, store: Any, targets: Callable[[], list[Any]], cfg_hash: str,
                 version: str):
        self.cfg = cluster_cfg
        self.store = store
        self._targets = targets  # the probe units (monitor.cluster.consensus), read at each heartbeat
        #: the cluster's latest published config (version, hash, body, node), read at each heartbeat
        self.published: tuple[int, str, str, str] | None = None
        self.config_hash = cfg_hash
        self.version = version
        self.instance = uuid.uuid4().hex
        self.epoch: int | None = None
        #: the leader lease's term while this node holds it (None otherwise)
        self.term: int | None = None
        self._leader_until = 0.0  # monotonic: this node leads until then unless the lease is renewed
        self._was_leader = False
        self.view: list[NodeInfo] = []
        self._owned: frozenset[str] = frozenset()
        self._lease_ok_until = 0.0  # monotonic: probing stops here unless the lease is renewed
        self._probe_from = 0.0  # monotonic: a (re)joined node waits before its first probe
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fenced_total = 0
        self.rejoins_total = 0
        self._db_down_since: float | None = None
        from monitor.measure.writer import RateLimited

        self._said = RateLimited(60.0)

    # -- the lease --------------------------------------------------------------------------
    @property
    def leader_fence(self) -> Fence | None:
        """The fence leader-only writes present (the node's lease and the leader term), or None when this node
        does not lead now."""
        fence, term = self.fence, self.term
        if fence is None or term is None or not self.leader:
            return None
        return Fence(fence.node, fence.instance, fence.epoch, fence.failover_delay, term)

    @property
    def leader(self) -> bool:
        """Whether this node leads now: it holds the leader lease, counted on its own monotonic clock from the
        last renewal it sent, less one heartbeat (so it has stepped down before the lease can go to another)."""
        return self.epoch is not None and time.monotonic() < self._leader_until

    @property
    def fence(self) -> Fence | None:
        """The fencing token this node's writes carry (None before it has joined)."""
        return None if self.epoch is None else Fence(self.cfg.node, self.instance, self.epoch, self.cfg.failover_delay)

    def _join(self, takeover: bool = False) -> int:
        return self.store.cluster_join(self.cfg.node, self.cfg.site, self.instance, self.config_hash, self.version,
                                       socket.gethostname(), os.getpid(), self.cfg.failover_delay, takeover)

    def _holder_is_gone(self) -> tuple[bool, float]:
        """Whether the instance holding our name is a dead process on this host (a restart after a crash),
        and how long its lease has left."""
        row = next((n for n in self.store.cluster_nodes() if n.node == self.cfg.node), None)
        if row is None:
            return True, 0.0
        left = max(0.0, self.cfg.failover_delay - row.age)
        if row.host != socket.gethostname():
            return False, left
        try:
            os.kill(row.pid, 0)
        except ProcessLookupError:
            return True, left
        except PermissionError:
            return False, left
        return False, left  # a live process of this host holds it: a real duplicate

    def join(self) -> None:
        """Join (or rejoin) under a new epoch. A name held by a live instance is refused (ClusterError), but a
        restart after a crash is not: a dead process of this host is taken over at once, and on another host
        the join waits out the holder's lease once before it gives up."""
        try:
            epoch = self._join()
        except ClusterError:
            gone, left = self._holder_is_gone()
            if not gone:
                if left <= 0 or left > self.cfg.failover_delay:
                    raise
                log.warning("cluster.node %s is held by another instance; waiting %.0f s for its lease to end",
                            self.cfg.node, left)
                time.sleep(left + self.cfg.heartbeat)
                epoch = self._join()  # raises ClusterError if it is still live
            else:
                log.warning("taking over cluster.node %s from a dead process of this host (a restart)", self.cfg.node)
                epoch = self._join(takeover=True)
        now = time.monotonic()
        with self._guard:
            self.epoch = epoch
            self._lease_ok_until = now + self.cfg.failover_delay - self.cfg.heartbeat
            # every other node refreshes its view within one heartbeat: wait two before probing
            self._probe_from = now + 2 * self.cfg.heartbeat
        log.info("joined the cluster as %s (site %s, epoch %d)", self.cfg.node, self.cfg.site, epoch)

    def may_probe(self) -> bool:
        """Whether this node may probe now: joined, past its start delay, and within its lease."""
        now = time.monotonic()
        return self.epoch is not None and self._probe_from <= now < self._lease_ok_until

    def owns(self, target_id: str) -> bool:
        """Whether this node probes ``target_id`` now (it may probe and the target is assigned to it)."""
        return self.may_probe() and target_id in self._owned

    @property
    def owned(self) -> frozenset[str]:
        """The ids of the targets assigned to this node."""
        return self._owned

    # -- the heartbeat ------------------------------------------------------------------------
    def tick(self) -> None:
        """One heartbeat: renew the lease (or rejoin), read the members, recompute the shard, take or renew the
        leader lease."""
        started = time.monotonic()
        fence = self.fence
        try:
            if fence is None or not self.store.cluster_heartbeat(fence, len(self._owned), self.config_hash):
                if fence is not None:
                    self.rejoins_total += 1
                    log.warning("lease of %s (epoch %d) expired or taken over; rejoining under a new epoch",
                                self.cfg.node, fence.epoch)
                self.join()
            else:
                with self._guard:
                    self._lease_ok_until = started + self.cfg.failover_delay - self.cfg.heartbeat
            view = self.store.cluster_nodes()
            self.published = self.store.cluster_config()
        except ClusterError as exc:
            if self._said.due("name"):
                log.error("%s (said at most once a minute)", exc)
            self._set_owned(frozenset(), [])
            return
        except StoreError as exc:
            if self._db_down_since is None:
                self._db_down_since = started
                log.error("cluster heartbeat failed; this node stops probing in %.0f s unless the database answers: %s",
                          max(0.0, self._lease_ok_until - started), exc)
            self._leader_lost("the database is unreachable")
            return
        if self._db_down_since is not None:
            log.warning("cluster heartbeat works again after %.0f s", started - self._db_down_since)
            self._db_down_since = None
        self._set_owned(self._shard(view), view)
        self._lead()

    def _lead(self) -> None:
        """Take or renew the leader lease (the time counts from before the request went out)."""
        fence = self.fence
        if fence is None:
            return
        sent = time.monotonic()
        try:
            lease = self.store.leader_lease(fence, self.cfg.failover_delay)
        except StoreError as exc:
            self._leader_lost(f"the leader lease could not be renewed: {exc}")
            return
        if lease is None:
            self._leader_lost("another node holds the leader lease")
            return
        with self._guard:
            self._leader_until = sent + self.cfg.failover_delay - self.cfg.heartbeat
            term, self.term = self.term, lease.term
        if not self._was_leader or term != lease.term:
            self._was_leader = True
            log.warning("this node is now the cluster's leader (term %d)", lease.term)

    def _leader_lost(self, why: str) -> None:
        with self._guard:
            self._leader_until = 0.0
            self.term = None
        if self._was_leader:
            self._was_leader = False
            log.warning("this node is no longer the cluster's leader: %s", why)

    def _shard(self, view: list[NodeInfo]) -> frozenset[str]:
        live = [n for n in view if n.alive(self.cfg.failover_delay)]
        by_site: dict[str, list[str]] = {}
        for n in live:
            by_site.setdefault(n.site, []).append(n.node)
        everyone = sorted(n.node for n in live)
        mine = set()
        for unit in self._targets():  # probe units (monitor.cluster.consensus): a target, or one site's view of one
            sites = unit.sites
            candidates = everyone if sites is None else sorted(node for site in sites for node in by_site.get(site, []))
            if owner_of(unit.id, candidates) == self.cfg.node:
                mine.add(unit.id)
        return frozenset(mine)

    def _set_owned(self, owned: frozenset[str], view: list[NodeInfo]) -> None:
        with self._guard:
            gained, lost = owned - self._owned, self._owned - owned
            self._owned, self.view = owned, view
        if gained or lost:
            log.info("shard of %s: %d targets (%d gained, %d released)", self.cfg.node, len(owned), len(gained),
                     len(lost))

    def _next_expiry(self) -> float:
        """Seconds until the first other live node's lease ends (so its death is seen then, not a heartbeat
        later), or infinity."""
        ages = [self.cfg.failover_delay - n.age for n in self.view
                if n.node != self.cfg.node and n.alive(self.cfg.failover_delay)]
        return min(ages) if ages else float("inf")

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                self.tick()
            except Exception:  # a bug in one heartbeat must not end membership
                log.exception("cluster heartbeat failed")
            elapsed = time.monotonic() - t0
            wait = min(self.cfg.heartbeat - elapsed, self._next_expiry() - elapsed + 0.02)
            self._stop.wait(max(0.02, wait))

    def start(self) -> None:
        """Join (a name held by a live instance raises ClusterError: exit 2 at start-up), learn the first shard,
        then renew from a thread of its own."""
        self.join()
        self.tick()
        self._thread = threading.Thread(target=self._run, name="cluster-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Leave the cluster: mark this node as gone, so the others take its targets without waiting for the
        failover delay."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.cfg.heartbeat + 5)
        fence = self.fence
        was_leader = self.leader
        self._leader_lost("this node stops")
        if fence is not None:
            try:
                if was_leader:
                    self.store.leader_release(fence)  # the next leader need not wait for the lease to run out
                self.store.cluster_leave(fence)  # the others take its targets at once
            except StoreError as exc:
                log.warning("could not leave the cluster cleanly (the others wait for the lease to expire): %s", exc)
