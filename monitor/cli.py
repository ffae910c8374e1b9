"""The ``slawatch`` command.

Exit codes: 0 success; 1 a runtime failure (or, for ``probe``, the target
failed its probe); 2 bad usage or an invalid config; 3 not yet implemented.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from datetime import datetime, timezone

from monitor import __version__
from monitor.config import load_config
from monitor.errors import ConfigError, SlawatchError, TargetNotFound
from monitor.logs import setup_logging
from monitor.units import format_duration

__all__ = ["main", "build_parser"]


def _add_common(parser: argparse.ArgumentParser, *, config: bool = True, nested: bool = False) -> None:
    """--version, and -c: on a command and again on its actions (``nested``), where it only overrides what the
    command was given (``slawatch tickets -c FILE list`` and ``slawatch tickets list -c FILE`` both work)."""
    parser.add_argument("--version", action="version", version=f"slawatch {__version__}")
    if config:
        parser.add_argument(
            "-c", "--config", metavar="FILE",
            default=argparse.SUPPRESS if nested else os.environ.get("SLAWATCH_CONFIG", "/etc/slawatch/slawatch.yaml"),
            help="config file (default: $SLAWATCH_CONFIG or /etc/slawatch/slawatch.yaml)",
        )


def _parser(sub, name: str, text: str, **kw) -> argparse.ArgumentParser:
    """A sub-command: its help line in the list above it, and as the description of its own --help."""
    return sub.add_parser(name, help=text, description=kw.pop("description", text[:1].upper() + text[1:] + "."), **kw)


def build_parser() -> argparse.ArgumentParser:
    """The ``slawatch`` command line: one sub-command per task (run, check-config, probe, status, report, ...)."""
    parser = argparse.ArgumentParser(
        prog="slawatch",
        description="Network service monitoring and SLA measurement.",
        epilog="Exit codes: 0 ok, 1 failure, 2 usage or config error, 3 not yet implemented.",
    )
    _add_common(parser, config=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = _parser(sub, "check-config", "validate a config file and print a summary")
    _add_common(p)

    p = _parser(sub, "run", "run the daemon: scheduler, probes, store and exporter")
    _add_common(p)

    p = _parser(sub, "probe", "run one probe cycle of a target now and print the result")
    _add_common(p)
    p.add_argument("target", metavar="TARGET_ID")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = _parser(sub, "status", "print each target's current state from the store")
    _add_common(p)
    p.add_argument("--json", action="store_true", help="print as JSON")

    p = _parser(sub, "report", "monthly SLA and uptime-credit report")
    _add_common(p)
    p.add_argument("--month", required=True, help="month as YYYY-MM (in each contract's time zone)")
    p.add_argument("--contract", help="only this contract")
    p.add_argument("--format", choices=["json", "csv", "html", "pdf"], default="json")
    p.add_argument("-o", "--output", help="output file (default: standard output for json and csv)")

    p = _parser(sub, "tickets", "the ticket ledger: list, show, ack, resolve, retry")
    _add_common(p)
    tsub = p.add_subparsers(dest="action", metavar="ACTION")
    tsub.required = True
    t = _parser(tsub, "list", "list tickets, with pending deliveries")
    _add_common(t, nested=True)
    t.add_argument("--contract", help="only this contract's tickets")
    t.add_argument("--state", choices=["open", "acknowledged", "resolved"], help="only tickets in this state")
    t.add_argument("--since", help="opened at or after, YYYY-MM-DD or ISO time (UTC)")
    t.add_argument("--until", help="opened before, YYYY-MM-DD or ISO time (UTC)")
    t.add_argument("--json", action="store_true", help="print as JSON")
    for name, text in (("show", "one ticket with its timeline and deliveries"), ("ack", "acknowledge: stops escalation"),
                       ("resolve", "resolve by hand")):
        t = _parser(tsub, name, text)
        _add_common(t, nested=True)
        t.add_argument("id", type=int)
        if name in ("ack", "resolve"):
            t.add_argument("--by", default=os.environ.get("USER", "cli"), help="who (default: $USER)")
        if name == "show":
            t.add_argument("--json", action="store_true", help="print as JSON")
    t = _parser(tsub, "retry", "retry pending deliveries now (all, or one ticket's)")
    _add_common(t, nested=True)
    t.add_argument("id", type=int, nargs="?")

    p = _parser(sub, "cluster", "the cluster: nodes, sites, heartbeats, leader, shards")
    _add_common(p)
    csub = p.add_subparsers(dest="action", metavar="ACTION")
    csub.required = True
    c = _parser(csub, "status", "every node with its site, heartbeat age, epoch, targets owned; the leader")
    _add_common(c, nested=True)
    c.add_argument("--json", action="store_true", help="print as JSON")

    p = _parser(sub, "portal", "serve the customer portal: each contract's evidence, read-only, on the store")
    _add_common(p)
    p = _parser(sub, "portal-hash", "print the argon2id hash of a password read from stdin (for portal.users)")
    _add_common(p, config=False)

    p = _parser(sub, "store", "the evidence store: migrate, status, copy")
    _add_common(p)
    ssub = p.add_subparsers(dest="action", metavar="ACTION")
    ssub.required = True
    s = _parser(ssub, "migrate", "apply pending schema migrations to the config's store")
    _add_common(s, nested=True)
    s = _parser(ssub, "status", "backend, schema version and rows per table of the config's store")
    _add_common(s, nested=True)
    s.add_argument("--json", action="store_true", help="print as JSON")
    s = _parser(ssub, "copy", "copy everything from one store to another, then verify it",
                description="Copy every table (ids kept), compare the row counts, and, when -c names a "
                                    "readable config, compare each month's report from both stores.")
    _add_common(s, nested=True)
    s.add_argument("--from", dest="source", required=True, metavar="URL",
                   help="sqlite:PATH or postgresql://USER@HOST/DB (the password from PGPASSWORD or .pgpass)")
    s.add_argument("--to", dest="target", required=True, metavar="URL", help="the same forms as --from")
    s.add_argument("--overwrite", action="store_true", help="empty a non-empty target first")
    return parser


# --------------------------------------------------------------------------- commands


def cmd_check_config(args) -> int:
    config = load_config(args.config)
    from monitor.config import config_warnings

    for warning in config_warnings(config):
        print(f"{args.config}: warning: {warning}", file=sys.stderr)
    print(f"{args.config}: OK: {config.summary()}")
    return 0


def cmd_run(args) -> int:
    from monitor import diagnostics

    diagnostics.install()  # `kill -USR1 <pid>` dumps every thread's stack to the log, rate-limited, safely
    from monitor.daemon import run_daemon

    from monitor.logs import config_secrets

    config = load_config(args.config)
    setup_logging(config.logging.level, config.logging.format, config.logging.levels, config_secrets(config))
    return run_daemon(args.config)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.3f} ms"


def cmd_probe(args) -> int:
    from monitor.measure.cycle import run_probes
    from monitor.daemon import check_runnable
    from probes.base import judge, shortfalls

    config = load_config(args.config)
    target = config.target(args.target)
    if target is None:
        known = ", ".join(t.id for t in config.targets[:20]) or "none"
        raise TargetNotFound(f"{args.config}: no target with id {args.target!r} (known: {known})")
    single = config.model_copy(update={"targets": [target]})
    check_runnable(single)
    results = asyncio.run(run_probes(target))
    objectives = config.contract(target.contract).objectives
    # each answered check judged against the contract's objectives, as the daemon judges its cycles
    judged = [judge(r.samples(), objectives) if r.ok else {} for r in results]
    if args.json:
        print(json.dumps({"target": target.id, "results": [{**r.to_dict(), "objectives": j}
                                                          for r, j in zip(results, judged)]}, indent=2))
    else:
        for r, verdicts in zip(results, judged):
            status = "OK" if r.ok else "FAILED"
            print(f"{target.id} {r.probe} {r.address}: {status}" + (f" ({r.reason})" if r.reason else ""))
            for line in r.lines():
                print(f"  {line}")
            if verdicts:
                missed = shortfalls(r.samples(), objectives, tuple(verdicts))
                print("  objectives: " + "; ".join(f"{name} MISSED ({missed[name]})" if name in missed
                                                   else f"{name} met" for name in verdicts))
    return 0 if all(r.ok for r in results) else 1


def cmd_status(args) -> int:
    from monitor.reports.status import circuit_rows
    from monitor.store import open_store

    config = load_config(args.config)
    store = open_store(config.storage, readonly=True)
    try:
        rows = circuit_rows(config, store, time.time())
    finally:
        store.close()
    now = time.time()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'TARGET':<22} {'CONTRACT':<16} {'STATE':<11} {'SINCE':<20} {'MONTH':>9} {'BUDGET':>7} "
          f"{'LAST RTT':>11} {'LOSS':>6} {'LAST CYCLE':>11} {'TICKET':>6}")
    for r in rows:
        since = datetime.fromtimestamp(r["since"], timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ") if r["since"] else "-"
        age = f"{format_duration(now - r['last_cycle'])} ago" if r["last_cycle"] else "never"
        loss = "-" if r["loss"] is None else f"{r['loss'] * 100:.1f}%"
        month = "-" if r["month_availability"] is None else f"{r['month_availability'] * 100:.3f}%"
        budget = "-" if r["error_budget_left"] is None else f"{r['error_budget_left'] * 100:.0f}%"
        ticket = "-" if r["open_ticket"] is None else f"#{r['open_ticket']}"
        print(f"{r['target']:<22} {r['contract']:<16} {r['state']:<11} {since:<20} {month:>9} {budget:>7} "
              f"{_ms(r['rtt_median']):>11} {loss:>6} {age:>11} {ticket:>6}")
        for site, v in (r.get("sites") or {}).items():  # a multi-site target: each site's own view
            site_age = f"{format_duration(now - v['last_cycle'])} ago" if v["last_cycle"] else "never"
            site_loss = "-" if v["loss"] is None else f"{v['loss'] * 100:.1f}%"
            print(f"{'  @' + site:<22} {'':<16} {v['state']:<11} {'':<20} {'':>9} {'':>7} "
                  f"{_ms(v['rtt_median']):>11} {site_loss:>6} {site_age:>11}")
    return 0


def cmd_report(args) -> int:
    import re

    from monitor.reports.report import build_report, progress_bar, render_csv, to_json
    from monitor.reports.html import render_html, render_pdf
    from monitor.store import open_store

    config = load_config(args.config)
    if not re.match(r"^\d{4}-(0[1-9]|1[0-2])$", args.month):
        raise UsageError(f"--month must be YYYY-MM (got {args.month!r})")
    if args.contract and not any(c.id == args.contract for c in config.contracts):
        known = ", ".join(c.id for c in config.contracts) or "none"
        raise UsageError(f"{args.config}: no contract with id {args.contract!r} (known: {known})")
    if args.format in ("html", "pdf") and not args.output:
        raise UsageError(f"--format {args.format} needs -o PATH")
    store = open_store(config.storage, readonly=True)
    try:
        report = build_report(store, config, args.month, now=time.time(), contract_id=args.contract,
                              progress=progress_bar())
    finally:
        store.close()
    if args.format == "json":
        text = to_json(report)
    elif args.format == "csv":
        text = render_csv(report)
    else:
        text = render_html(report, progress=progress_bar())
    if args.format == "pdf":
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp:
            html = Path(tmp) / "report.html"
            html.write_text(text)
            render_pdf(str(html), str(Path(args.output).resolve()))
    elif args.output:
        with open(args.output, "w") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if args.output:
        print(f"{args.output}: {args.format} report for {args.month}, {len(report.contracts)} contracts", file=sys.stderr)
    return 0


def _when(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"not a date or time: {text!r} (use YYYY-MM-DD or an ISO time)") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


class UsageError(SlawatchError):
    """A command's arguments are wrong (a month, a contract, a format, a date): one line, exit 2."""

    exit_code = 2


def _stamp(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def cmd_tickets(args) -> int:
    from monitor.store import open_store
    from monitor.tickets.ledger import Ledger, list_tickets, load_ticket, response_times, ticket_refs, ticket_timeline

    config = load_config(args.config)
    store = open_store(config.storage)
    try:
        ledger = Ledger(config)
        if args.action == "list":
            tickets = list_tickets(store, contract=args.contract, state=args.state, since=_when(args.since),
                                   until=_when(args.until))
            pending = {tid: (n, ",".join(sinks), err) for tid, (n, sinks, err) in store.outbox_pending_by_ticket().items()}
            if args.json:
                rows = [{**{f: getattr(t, f) for f in t.__slots__}, "pending_deliveries": pending.get(t.id, (0,))[0]}
                        for t in tickets]
                print(json.dumps(rows, indent=2, default=str))
                return 0
            print(f"{'ID':>5} {'STATE':<12} {'SEV':<8} {'CONTRACT':<18} {'OPENED':<20} {'TIER':>4} {'TITLE':<40} DELIVERY")
            for t in tickets:
                p = pending.get(t.id)
                delivery = "delivered" if p is None else f"{p[0]} pending to {p[1]}" + (f": {p[2][:60]}" if p[2] else "")
                if t.parent_id is not None:
                    delivery = f"grouped under {t.parent_id}"
                print(f"{t.id:>5} {t.state:<12} {t.severity:<8} {t.contract:<18} {_stamp(t.opened):<20} {t.tier:>4} "
                      f"{t.title[:40]:<40} {delivery}")
            return 0
        if args.action == "show":
            t = load_ticket(store, args.id)
            contract = next((c for c in config.contracts if c.id == t.contract), None)
            data = {f: getattr(t, f) for f in t.__slots__}
            data["refs"] = ticket_refs(store, t.id)
            data["response"] = response_times(t, contract) if contract else None
            data["timeline"] = [{"at": _stamp(a), "kind": k, "text": x} for a, k, x in ticket_timeline(store, t.id)]
            from monitor.logs import config_secrets
            from monitor.tickets.delivery import scrub

            secrets = config_secrets(config)  # errors stored before they were scrubbed, or echoing a rotated one
            data["deliveries"] = [{"sink": o.sink, "action": o.action, "delivered": o.delivered, "attempts": o.attempts,
                                   "last_error": o.last_error and scrub(o.last_error, secrets)}
                                  for o in store.outbox(t.id)]
            if args.json:
                print(json.dumps(data, indent=2, default=str))
                return 0
            print(f"ticket {t.id} ({t.uid}): {t.title}")
            print(f"  state {t.state}, severity {t.severity}, kind {t.kind}, contract {t.contract}, targets {', '.join(t.targets) or '-'}")
            print(f"  opened {_stamp(t.opened)}, acknowledged {_stamp(t.acknowledged)}, resolved {_stamp(t.resolved)}, tier {t.tier}")
            for sink, ref in data["refs"].items():
                print(f"  {sink}: {ref}")
            print("  timeline:")
            for e in data["timeline"]:
                print(f"    {e['at']}  {e['kind']:<13} {e['text']}")
            print("  deliveries:")
            for d in data["deliveries"]:
                state = f"delivered {_stamp(d['delivered'])}" if d["delivered"] else f"pending after {d['attempts']} attempts" + (
                    f": {d['last_error']}" if d["last_error"] else "")
                print(f"    {d['sink']:<14} {d['action']:<8} {state}")
            return 0
        if args.action == "ack":
            t = ledger.acknowledge(store, args.id, args.by)
            print(f"ticket {t.id}: {t.state} by {args.by}")
            return 0
        if args.action == "resolve":
            t = ledger.resolve(store, args.id, args.by)
            print(f"ticket {t.id}: resolved by {args.by}")
            return 0
        if args.action == "retry":
            n = store.outbox_retry(args.id)
            print(f"{n} pending deliveries will be retried at the daemon's next delivery round")
            return 0
    finally:
        store.close()
    return 2


def cmd_cluster(args) -> int:
    from monitor.errors import ClusterError
    from monitor.store import open_store
    from monitor.store.base import ClusterStore

    config = load_config(args.config)
    if config.cluster is None or config.storage.backend != "postgresql":
        raise ClusterError(f"{args.config}: no cluster section (cluster: {{node, site}} with a postgresql store)")
    delay, beat = config.cluster.failover_delay, config.cluster.heartbeat
    store = open_store(config.storage, readonly=True)
    try:
        if not isinstance(store, ClusterStore):
            raise ClusterError(f"{args.config}: the {store.backend} store cannot hold a cluster")
        nodes = store.cluster_nodes()
        leadership = store.cluster_leadership()
        from monitor.cluster.vantage import open_site_outages

        site_outages = open_site_outages(store.events(time.time() - 31 * 86400, time.time() + 60))
        from monitor.cluster.consensus import probe_units

        units = probe_units(config.targets)
        states = store.load_states(list(units))
    finally:
        store.close()
    now = time.time()
    # leadership in the database's time: the lease's holder while it is unexpired, else none since it expired
    leader = leadership.node if leadership is not None and leadership.remaining > 0 else None
    lease = None if leadership is None else {
        "node": leadership.node, "term": leadership.term, "since": _stamp(leadership.since),
        "expires": _stamp(leadership.expires), "expires_in_s": round(leadership.remaining, 3)}
    lagging = []  # probe units whose last stored cycle is older than three intervals: a shard that lags
    for uid, unit in units.items():
        last = (states[uid].tracker or {}).get("last_cycle") if uid in states else None
        if last is not None and now - last > 3 * unit.target.interval:
            lagging.append({"target": uid, "last_cycle_age_s": round(now - last, 1)})
    lagging.sort(key=lambda x: -x["last_cycle_age_s"])
    leader_hash = next((n.config_hash for n in nodes if n.node == leader), None)
    targets = {t.id: t for t in config.targets}
    rows = []
    for n in nodes:
        state = "left" if n.left else "dead" if not n.alive(delay) else "lagging" if n.age > 2 * beat else "live"
        rows.append({"node": n.node, "site": n.site, "state": state, "heartbeat_age_s": round(n.age, 3),
                     "epoch": n.epoch, "targets_owned": n.owned if state in ("live", "lagging") else 0,
                     "leader": n.node == leader, "version": n.version, "host": n.host, "pid": n.pid,
                     "config_hash": n.config_hash,
                     "config_differs": leader_hash is not None and n.config_hash != leader_hash})
    live_sites = {r["site"] for r in rows if r["state"] in ("live", "lagging")}
    uncovered = sorted({site for t in targets.values() if t.vantage for site in t.vantage.sites} - live_sites)
    if args.json:
        print(json.dumps({"leader": leader, "leader_lease": lease, "nodes": rows, "sites_without_live_node": uncovered,
                          "site_outages": site_outages, "lagging_targets": lagging}, indent=2))
        return 0
    if leader is not None and leadership is not None:
        print(f"leader: {leader} (term {leadership.term}, since {_stamp(leadership.since)}, lease "
              f"{leadership.remaining:.1f} s ahead)")
    elif leadership is not None:
        print(f"leader: -- none -- since {_stamp(leadership.expires)} ({-leadership.remaining:.0f} s; the last was "
              f"{leadership.node}, term {leadership.term})")
    else:
        print("leader: -- none -- (never elected)")
    print(f"{'NODE':<16} {'SITE':<12} {'STATE':<8} {'HEARTBEAT':>10} {'EPOCH':>6} {'TARGETS':>8}  CONFIG")
    for r in rows:
        print(f"{r['node']:<16} {r['site']:<12} {r['state']:<8} {r['heartbeat_age_s']:>9.1f}s {r['epoch']:>6} "
              f"{r['targets_owned']:>8}  {'DIFFERS from the leader' if r['config_differs'] else r['config_hash']}")
    for site in uncovered:
        print(f"site {site}: no live node; its vantage of the targets that name it is unknown")
    if lagging:
        shown = ", ".join(f"{x['target']} ({x['last_cycle_age_s']:.0f} s)" for x in lagging[:10])
        print(f"lagging: {len(lagging)} targets whose last cycle is older than 3 intervals: {shown}"
              + (" ..." if len(lagging) > 10 else ""))
    for site, since in sorted(site_outages.items()):
        print(f"site {site}: its own monitoring outage since {datetime.fromtimestamp(since, timezone.utc):%Y-%m-%d %H:%M:%S} "
              "UTC (every target dark from there while other sites see them; no customer ticket)")
    return 0


def cmd_store(args) -> int:
    from monitor.store import open_store, open_url

    if args.action == "copy":
        return _store_copy(args, open_url)
    config = load_config(args.config)
    store = open_store(config.storage, migrate=False)
    try:
        if args.action == "migrate":
            before = store.schema_version()
            after = store.migrate()
            print(f"{store.location}: schema version {after}"
                  + (f" (migrated from {before})" if before != after else " (already current)"))
            return 0
        info = store.info()
        if args.json:
            print(json.dumps({"backend": info.backend, "location": info.location,
                              "schema_version": info.schema_version, "code_version": info.code_version,
                              "rows": info.rows}, indent=2))
            return 0
        state = ("current" if info.schema_version == info.code_version else
                 "needs `slawatch store migrate`" if info.schema_version < info.code_version else
                 "NEWER than this slawatch: upgrade slawatch")
        print(f"backend   {info.backend}\nlocation  {info.location}\n"
              f"schema    version {info.schema_version} (this slawatch: {info.code_version}; {state})")
        for table, n in info.rows.items():
            print(f"  {table:<18} {n:>12,}")
        return 0
    finally:
        store.close()


def _store_copy(args, open_url) -> int:
    from monitor.reports.report import build_report, progress_bar, to_json
    from monitor.store.copy import copy_store

    src = open_url(args.source)
    try:
        dst = open_url(args.target)
    except BaseException:
        src.close()
        raise
    try:
        t0 = time.monotonic()
        result = copy_store(src, dst, overwrite=args.overwrite, progress=progress_bar())
        rows = sum(result.target.values())
        print(f"copied {rows:,} rows in {time.monotonic() - t0:.1f} s from {src.location} "
              f"to {dst.location}", file=sys.stderr)
        bad = {t: (n, result.target.get(t)) for t, n in result.source.items() if result.target.get(t) != n}
        for table, (n, m) in bad.items():
            print(f"  {table}: {n} rows in the source, {m} in the target", file=sys.stderr)
        if bad:
            print("slawatch: error: the copy is incomplete (row counts differ)", file=sys.stderr)
            return 1
        print(f"verified: row counts of {len(result.source)} tables match", file=sys.stderr)
        if not os.path.exists(args.config):
            print(f"report comparison skipped: no config at {args.config} (give -c FILE)", file=sys.stderr)
            return 0
        config = load_config(args.config)
        now = time.time()
        for month in result.months:
            a, b = build_report(src, config, month, now=now), build_report(dst, config, month, now=now)
            if to_json(a) != to_json(b):  # byte for byte (one ``now``: the same generated_at)
                print(f"slawatch: error: the {month} report differs between the two stores", file=sys.stderr)
                return 1
        print(f"verified: the reports of {len(result.months)} months are identical in both stores"
              + (f" ({', '.join(result.months)})" if result.months else ""), file=sys.stderr)
        return 0
    finally:
        src.close()
        dst.close()


def cmd_portal(args) -> int:
    from monitor.logs import config_secrets
    from monitor.portal.server import serve

    config = load_config(args.config)
    setup_logging(config.logging.level, config.logging.format, config.logging.levels, config_secrets(config))
    return serve(config, args.config)


def cmd_portal_hash(args) -> int:
    from monitor.portal.auth import hash_password

    password = sys.stdin.readline().rstrip("\n")
    if len(password) < 12:
        raise UsageError("the password must be at least 12 characters (read from the first line of stdin)")
    print(hash_password(password))
    return 0


COMMANDS = {
    "portal": cmd_portal,
    "portal-hash": cmd_portal_hash,
    "store": cmd_store,
    "cluster": cmd_cluster,
    "check-config": cmd_check_config,
    "run": cmd_run,
    "probe": cmd_probe,
    "status": cmd_status,
    "report": cmd_report,
    "tickets": cmd_tickets,
}


def main(argv: list[str] | None = None) -> int:
    """Run one ``slawatch`` command; a SlawatchError is printed as a one-line error with exit code 2, never a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "run":
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return exc.exit_code
    except SlawatchError as exc:
        print(f"slawatch: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`slawatch status | head -1`): what it wanted was written; no traceback, and
        # stdout is pointed at /dev/null so the interpreter's own flush at exit fails quietly too
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
