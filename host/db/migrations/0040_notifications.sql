-- Notifications: the outbox (events written in the transaction of the state
-- change they describe), per-sink delivery state, dead letters, and the
-- dispatcher's lease. Portable SQL (SQLite and PostgreSQL); integers BIGINT,
-- timestamps TEXT RFC 3339 UTC with microseconds.

-- Named monotonic counters, bumped with UPDATE ... RETURNING. The row lock is
-- held until the emitting transaction ends, so sequence values commit in order
-- and without gaps: a reader never sees seq N+1 before seq N.
CREATE TABLE notification_counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO notification_counters (name, value) VALUES ('outbox', 0);

CREATE TABLE notification_outbox (
    seq BIGINT PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    -- Delivery is ordered per key (instance uuid, aggregate uuid, ...).
    ordering_key TEXT NOT NULL,
    event_type TEXT NOT NULL,
    priority TEXT NOT NULL,
    publisher_id TEXT NOT NULL,
    project_id TEXT,
    instance_uuid TEXT,
    created_at TEXT NOT NULL,
    -- The versioned envelope, JSON.
    body TEXT NOT NULL,
    -- The unversioned (legacy) envelope, JSON, when the event has one.
    legacy_body TEXT
);
CREATE INDEX notification_outbox_event_type ON notification_outbox (event_type);
CREATE INDEX notification_outbox_instance ON notification_outbox (instance_uuid);
CREATE INDEX notification_outbox_created ON notification_outbox (created_at);

-- Per sink: every event with seq <= cursor is settled (delivered, skipped or
-- dead-lettered).
CREATE TABLE notification_sink_cursors (
    sink TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Per sink and event beyond the cursor: attempts so far and the outcome.
-- state: 'pending' (failed, will retry), 'delivered', 'dead'.
CREATE TABLE notification_deliveries (
    sink TEXT NOT NULL,
    seq BIGINT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    last_error TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (sink, seq)
);

-- Events a sink gave up on after its max attempts; kept with a copy of the
-- message so outbox pruning does not lose them.
CREATE TABLE notification_dead_letters (
    sink TEXT NOT NULL,
    seq BIGINT NOT NULL,
    message_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    last_error TEXT NOT NULL,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (sink, seq)
);
CREATE INDEX notification_dead_letters_created ON notification_dead_letters (created_at);

-- One dispatcher delivers at a time (several controllers may share a
-- PostgreSQL database): the holder renews its lease; a lapsed lease is taken.
CREATE TABLE notification_dispatcher_lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
INSERT INTO notification_dispatcher_lease (name, holder, expires_at) VALUES ('dispatcher', '', '');
