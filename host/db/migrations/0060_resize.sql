-- Resize: one row per resize of an instance (Nova's `migrations` table, for
-- migration_type 'resize'). It remembers what a confirm or a revert needs:
-- where the instance came from, both flavors (JSON snapshots) and whether it
-- was running. While the row is unfinished the instance holds two claims:
-- the old flavor on the source node under its own uuid, the new flavor on
-- the destination under the consumer 'resize:<uuid>'.
--
-- status: pre-migrating (scheduling) → migrating (source powering off) →
-- post-migrating (destination defining) → finished (VERIFY_RESIZE) →
-- confirming/reverting → confirmed/reverted; error on a failure.
CREATE TABLE migrations (
    uuid TEXT PRIMARY KEY,
    id BIGINT NOT NULL UNIQUE,
    instance_uuid TEXT NOT NULL,
    migration_type TEXT NOT NULL,
    source_compute TEXT NOT NULL,
    source_node TEXT NOT NULL,
    dest_compute TEXT,
    dest_node TEXT,
    old_flavor TEXT NOT NULL,
    new_flavor TEXT NOT NULL,
    old_vm_state TEXT NOT NULL,
    user_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX migrations_instance ON migrations (instance_uuid, status);
