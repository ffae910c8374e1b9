"""The two migration histories the backends kept before monitor.store.schema (SQLite versions 1-5, PostgreSQL
1-6), verbatim from the tree before it (git show acfa31e:monitor/store/sqlite.py, postgres.py). Reference data
for tests/test_schema.py: a store made by them at any version must carry on under the one history to the same
schema as a new store."""

# ruff: noqa: E501

SQLITE: list[str] = [
    # 1: cycles, target state, outages, daemon runs
    """
    CREATE TABLE cycles (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        probe TEXT NOT NULL,
        started REAL NOT NULL,
        duration REAL NOT NULL,
        ok INTEGER NOT NULL,
        verdict TEXT NOT NULL,
        reason TEXT,
        sent INTEGER,
        received INTEGER,
        rtt_median REAL,
        jitter REAL,
        samples TEXT
    );
    CREATE INDEX cycles_target_started ON cycles (target, started);
    CREATE TABLE target_state (
        target TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        since REAL,
        updated REAL NOT NULL,
        tracker TEXT NOT NULL
    );
    CREATE TABLE outages (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        contract TEXT NOT NULL,
        kind TEXT NOT NULL,
        start REAL NOT NULL,
        end REAL,
        UNIQUE (target, kind, start)
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        started REAL NOT NULL,
        stopped REAL,
        version TEXT NOT NULL
    );
    """,
]
SQLITE.append(
    # 2: SLA engine: target ids, unknown intervals, hourly and monthly rollups, breach events
    """
    CREATE TABLE targets (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE
    );
    CREATE TABLE unknown_intervals (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        start REAL NOT NULL,
        end REAL NOT NULL,
        reason TEXT NOT NULL,
        UNIQUE (target, start)
    );
    CREATE INDEX unknown_target_start ON unknown_intervals (target, start);
    CREATE TABLE rollups_hourly (
        target_id INTEGER NOT NULL,
        hour INTEGER NOT NULL,
        counts BLOB NOT NULL,
        rtt BLOB NOT NULL,
        PRIMARY KEY (target_id, hour)
    ) WITHOUT ROWID;
    CREATE TABLE rollups_monthly (
        target_id INTEGER NOT NULL,
        month TEXT NOT NULL,
        counts BLOB NOT NULL,
        rtt BLOB NOT NULL,
        PRIMARY KEY (month, target_id)
    ) WITHOUT ROWID;
    CREATE TABLE events (
        key TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        contract TEXT NOT NULL,
        target TEXT,
        at REAL NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX events_at ON events (at);
    CREATE INDEX outages_start ON outages (start);
    """
)
SQLITE.append(
    # 3: the ticket ledger, its timeline, external references and the delivery outbox
    """
    CREATE TABLE tickets (
        id INTEGER PRIMARY KEY,
        uid TEXT NOT NULL UNIQUE,
        incident_key TEXT NOT NULL,
        contract TEXT NOT NULL,
        targets TEXT NOT NULL,
        severity TEXT NOT NULL,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        title TEXT NOT NULL,
        opened REAL NOT NULL,
        acknowledged REAL,
        resolved REAL,
        tier INTEGER NOT NULL DEFAULT 0,
        parent_id INTEGER REFERENCES tickets (id),
        updated REAL NOT NULL
    );
    CREATE UNIQUE INDEX tickets_open_key ON tickets (incident_key) WHERE state != 'resolved';
    CREATE INDEX tickets_state ON tickets (state, opened);
    CREATE TABLE ticket_events (
        id INTEGER PRIMARY KEY,
        ticket_id INTEGER NOT NULL REFERENCES tickets (id),
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        text TEXT NOT NULL
    );
    CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id, at);
    CREATE TABLE ticket_refs (
        ticket_id INTEGER NOT NULL REFERENCES tickets (id),
        sink TEXT NOT NULL,
        external_id TEXT NOT NULL,
        last_action TEXT NOT NULL DEFAULT 'open',
        PRIMARY KEY (ticket_id, sink)
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        ticket_id INTEGER NOT NULL REFERENCES tickets (id),
        sink TEXT NOT NULL,
        action TEXT NOT NULL,
        text TEXT NOT NULL,
        recipients TEXT NOT NULL,
        idempotency_key TEXT NOT NULL UNIQUE,
        created REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt REAL NOT NULL,
        delivered REAL,
        last_error TEXT
    );
    CREATE INDEX outbox_due ON outbox (delivered, next_attempt);
    ALTER TABLE outages ADD COLUMN evidence TEXT;
    """
)
SQLITE.append(
    # 4: the node and site (vantage point) a cycle was probed by, in a cluster
    """
    ALTER TABLE cycles ADD COLUMN node TEXT;
    ALTER TABLE cycles ADD COLUMN site TEXT;
    """
)
SQLITE.append(
    # 5: batches replayed from a node's local spool, each applied once
    """
    CREATE TABLE applied_batches (id TEXT PRIMARY KEY, applied REAL NOT NULL);
    """
)


POSTGRESQL: list[str] = [
    # 1: the whole schema of SQLite's version 3, in PostgreSQL's types
    """
    CREATE TABLE runs (
        id bigserial PRIMARY KEY,
        started timestamptz NOT NULL,
        stopped timestamptz,
        version text NOT NULL
    );
    CREATE TABLE targets (
        id serial PRIMARY KEY,
        name text NOT NULL UNIQUE
    );
    CREATE TABLE target_state (
        target text PRIMARY KEY,
        state text NOT NULL,
        since timestamptz,
        updated timestamptz NOT NULL,
        tracker jsonb NOT NULL
    );
    CREATE TABLE cycles (
        target text NOT NULL,
        probe text NOT NULL,
        started timestamptz NOT NULL,
        duration double precision NOT NULL,
        ok boolean NOT NULL,
        verdict text NOT NULL,
        reason text,
        sent integer,
        received integer,
        rtt_median double precision,
        jitter double precision,
        samples jsonb
    ) PARTITION BY RANGE (started);
    CREATE INDEX cycles_target_started ON cycles (target, started);
    CREATE TABLE outages (
        id bigserial PRIMARY KEY,
        target text NOT NULL,
        contract text NOT NULL,
        kind text NOT NULL,
        start timestamptz NOT NULL,
        "end" timestamptz,
        evidence jsonb,
        UNIQUE (target, kind, start)
    );
    CREATE INDEX outages_start ON outages (start);
    CREATE TABLE unknown_intervals (
        id bigserial PRIMARY KEY,
        target text NOT NULL,
        start timestamptz NOT NULL,
        "end" timestamptz NOT NULL,
        reason text NOT NULL,
        UNIQUE (target, start)
    );
    CREATE TABLE rollups_hourly (
        target_id integer NOT NULL,
        hour_no integer NOT NULL,  -- hours since 1970-01-01 UTC: 4 bytes, not 8, in 744 rows a target-month
        counts bytea NOT NULL,
        rtt bytea NOT NULL,
        PRIMARY KEY (target_id, hour_no) WITH (fillfactor = 100)
    );
    COMMENT ON COLUMN rollups_hourly.hour_no IS 'the hour''s start in unix seconds / 3600';
    CREATE TABLE rollups_monthly (
        target_id integer NOT NULL,
        month text NOT NULL,
        counts bytea NOT NULL,
        rtt bytea NOT NULL,
        PRIMARY KEY (month, target_id)
    );
    CREATE TABLE events (
        key text PRIMARY KEY,
        kind text NOT NULL,
        contract text NOT NULL,
        target text,
        at timestamptz NOT NULL,
        data jsonb NOT NULL
    );
    CREATE INDEX events_at ON events (at);
    CREATE TABLE tickets (
        id bigserial PRIMARY KEY,
        uid text NOT NULL UNIQUE,
        incident_key text NOT NULL,
        contract text NOT NULL,
        targets jsonb NOT NULL,
        severity text NOT NULL,
        kind text NOT NULL,
        state text NOT NULL,
        title text NOT NULL,
        opened timestamptz NOT NULL,
        acknowledged timestamptz,
        resolved timestamptz,
        tier integer NOT NULL DEFAULT 0,
        parent_id bigint REFERENCES tickets (id),
        updated timestamptz NOT NULL
    );
    CREATE UNIQUE INDEX tickets_open_key ON tickets (incident_key) WHERE state != 'resolved';
    CREATE INDEX tickets_state ON tickets (state, opened);
    CREATE TABLE ticket_events (
        id bigserial PRIMARY KEY,
        ticket_id bigint NOT NULL REFERENCES tickets (id),
        at timestamptz NOT NULL,
        kind text NOT NULL,
        text text NOT NULL
    );
    CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id, at);
    CREATE TABLE ticket_refs (
        ticket_id bigint NOT NULL REFERENCES tickets (id),
        sink text NOT NULL,
        external_id text NOT NULL,
        last_action text NOT NULL DEFAULT 'open',
        PRIMARY KEY (ticket_id, sink)
    );
    CREATE TABLE outbox (
        id bigserial PRIMARY KEY,
        ticket_id bigint NOT NULL REFERENCES tickets (id),
        sink text NOT NULL,
        action text NOT NULL,
        text text NOT NULL,
        recipients jsonb NOT NULL,
        idempotency_key text NOT NULL UNIQUE,
        created timestamptz NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        next_attempt timestamptz NOT NULL,
        delivered timestamptz,
        last_error text
    );
    CREATE INDEX outbox_due ON outbox (next_attempt) WHERE delivered IS NULL;
    """,
]
POSTGRESQL.append(
    # 2: clusters: the members with their leases and fencing epochs; the node and site of each cycle
    """
    ALTER TABLE cycles ADD COLUMN node text, ADD COLUMN site text;
    CREATE SEQUENCE cluster_epoch;
    CREATE TABLE cluster_nodes (
        node text PRIMARY KEY,
        site text NOT NULL,
        instance text NOT NULL,          -- the running process (a new one per start)
        epoch bigint NOT NULL,           -- fencing token: a new one at every (re)join
        heartbeat timestamptz NOT NULL,  -- the database's clock, so node clocks cannot disagree on liveness
        started timestamptz NOT NULL,
        config_hash text NOT NULL,
        version text NOT NULL,
        host text NOT NULL,
        pid integer NOT NULL,
        owned integer NOT NULL DEFAULT 0,
        left_at timestamptz
    );
    """
)
POSTGRESQL.append(
    # 3: the cluster's shared config: each reload of a node publishes its file's text; the others adopt it
    """
    CREATE TABLE cluster_config (
        version bigint PRIMARY KEY,
        hash text NOT NULL,
        body text NOT NULL,              -- the config file's text (secrets only as ${ENV} or *_file references)
        node text NOT NULL,
        published timestamptz NOT NULL DEFAULT clock_timestamp()
    );
    """
)
POSTGRESQL.append(
    # 4: leadership as a lease in the database's time (no longer an advisory lock on a session, which a leader cut
    # from the database kept until the server's TCP keepalives ended it: about 2 h 11 min with the defaults)
    """
    CREATE TABLE cluster_leader (
        id smallint PRIMARY KEY CHECK (id = 1),
        node text NOT NULL,
        instance text NOT NULL,
        epoch bigint NOT NULL,           -- the holder's node epoch (cluster_nodes)
        term bigint NOT NULL,            -- fencing token of leadership: new for every new holder, only grows
        since timestamptz NOT NULL,
        expires timestamptz NOT NULL     -- the database's clock
    );
    """
)
POSTGRESQL.append(
    # 5: batches replayed from a node's local spool, each applied once
    """
    CREATE TABLE applied_batches (id text PRIMARY KEY, applied timestamptz NOT NULL DEFAULT clock_timestamp());
    """
)
POSTGRESQL.append(
    # 6: every leader term's holder and its lease's last expiry, in the database's time: the history a checker
    # reads to verify that no two terms ever overlapped (tests/faults.py), and the operator to see who led when
    """
    CREATE TABLE leader_terms (
        term bigint PRIMARY KEY,
        node text NOT NULL,
        instance text NOT NULL,
        epoch bigint NOT NULL,
        since timestamptz NOT NULL,
        expires timestamptz NOT NULL
    );
    INSERT INTO leader_terms SELECT term, node, instance, epoch, since, expires FROM cluster_leader;
    """
)
