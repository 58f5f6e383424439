-- The outbox's sequence numbers become generated ids (SQLite;
-- migrations/postgres has the same step for PostgreSQL). They were bumped on
-- one `notification_counters` row that every emitting transaction updated;
-- now `seq` is `INTEGER PRIMARY KEY AUTOINCREMENT` (ids increase, a pruned
-- one is never given again). Numbering goes on above every number the
-- counter gave (sink cursors and dead letters name them), and the counter
-- goes. SQLite cannot change a primary key in place: the table is rebuilt
-- (nothing references it).
ALTER TABLE notification_outbox RENAME TO notification_outbox_before_0103;

CREATE TABLE notification_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
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

INSERT INTO notification_outbox (seq, message_id, ordering_key, event_type, priority,
    publisher_id, project_id, instance_uuid, created_at, body, legacy_body)
SELECT seq, message_id, ordering_key, event_type, priority,
    publisher_id, project_id, instance_uuid, created_at, body, legacy_body
FROM notification_outbox_before_0103;

DROP TABLE notification_outbox_before_0103;

CREATE INDEX notification_outbox_event_type ON notification_outbox (event_type);
CREATE INDEX notification_outbox_instance ON notification_outbox (instance_uuid);
CREATE INDEX notification_outbox_created ON notification_outbox (created_at);

-- The copy set sqlite_sequence to the largest seq kept; the counter may be
-- higher (pruned events).
INSERT INTO sqlite_sequence (name, seq)
SELECT 'notification_outbox', 0
WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'notification_outbox');
UPDATE sqlite_sequence
SET seq = MAX(seq, COALESCE((SELECT value FROM notification_counters WHERE name = 'outbox'), 0))
WHERE name = 'notification_outbox';

DROP TABLE notification_counters;
