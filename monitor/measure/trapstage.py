"""The SNMP-trap stage of the daemon (monitor.service): a UDP listener for v2c and v3 traps from the targets'
addresses; a linkDown trap opens the target's outage at once (monitor.measure.traps receives, this stage
records). Started with the listeners, before the node joins a cluster: a taken or forbidden address is one
line naming its key (exit 2)."""

from __future__ import annotations

import logging
import time
from typing import Any

from monitor.errors import ListenError

__all__ = ["TrapStage"]

log = logging.getLogger("slawatch")


class TrapStage:
    """Traps for the config's targets (their addresses, updated on reload); ``writer`` takes the records."""

    name = "traps"

    def __init__(self, config: Any, live: Any, writer: Any):
        self.config, self.live, self.writer = config, live, writer
        self.receiver: Any = None  # monitor.measure.traps.TrapReceiver while started

    async def start(self) -> None:
        """Bind and start the receiver (when the config has a ``traps`` section); ListenError when it cannot."""
        cfg = self.config.traps
        if cfg is None:
            return
        from monitor.measure.traps import TrapReceiver

        host, _, port = cfg.listen.rpartition(":")
        users = [{"user": u.user, "engine_id": u.engine_id.removeprefix("0x"), "auth_protocol": u.auth_protocol,
                  "auth_key": u.auth_key.get_secret_value() if u.auth_key else None, "priv_protocol": u.priv_protocol,
                  "priv_key": u.priv_key.get_secret_value() if u.priv_key else None} for u in cfg.users]
        receiver = TrapReceiver((host.strip("[]"), int(port)), [cfg.community.get_secret_value()] if cfg.community
                                else [], users, self._sources(self.config), self.on_trap, cfg.oids)
        try:
            receiver.start()
        except Exception as exc:  # pysnmp wraps the socket's OSError in its own carrier error
            raise ListenError("traps.listen", cfg.listen, exc) from None
        self.receiver = self.live.traps = receiver
        log.info("SNMP trap receiver listening on %s", cfg.listen)

    async def reload(self, world: Any) -> None:
        """The new config's targets: traps from a target added by the reload count, a removed one's do not (the
        listener's own settings take effect at the next restart)."""
        self.config = world.config
        if self.receiver is not None:
            self.receiver.sources = self._sources(world.config)

    async def stop(self) -> None:
        """Close the listener."""
        if self.receiver is not None:
            self.receiver.close()

    @staticmethod
    def _sources(config: Any) -> dict[str, str]:
        return {t.address: t.id for t in config.targets}

    def on_trap(self, target_id: str, kind: str, binds: dict) -> None:
        """A trap from a target: a linkDown forces its state down now, with the trap as the evidence."""
        log.warning("trap %s from target %s", kind, target_id)
        live = self.live.targets.get(target_id)
        target = self.config.target(target_id)
        if live is None or target is None or kind != "linkDown":
            return
        from monitor.measure.cycle import transition_records

        now = time.time()
        transitions = live.tracker.force_down(now)
        if transitions:
            live.observe_trap(now, kind)
        state, outages, events = transition_records(target, transitions, live, now,
                                                    evidence={"trap": kind, "varbinds": binds})
        batch = self.writer.batch
        batch.events.extend(events)
        batch.outages.extend(outages)
        batch.states[target.id] = state
        self.writer.added()
