-- Ids the database generates (SQLite; migrations/postgres has the same step
-- for PostgreSQL). The integer ids of key pairs, aggregates, services,
-- compute nodes and migrations were MAX(id) + 1, read by the inserting
-- transaction: two writers not serialized with each other (key pairs of two
-- projects on PostgreSQL) could be given the same id, and the id of the
-- newest row was given again after it was deleted. Each of these ids becomes
-- `INTEGER PRIMARY KEY AUTOINCREMENT`: inserts leave `id` out and read it
-- back (`novum_db::insert_returning_id`); ids keep increasing and a deleted
-- id is never given again (sqlite_sequence remembers the largest).
--
-- SQLite cannot change a primary key in place, so each table is rebuilt:
-- renamed, created anew, copied (ids kept; the copy sets sqlite_sequence to
-- the largest id) and the old copy dropped. Foreign keys are on and cannot be
-- turned off inside the migration's transaction, so a parent is renamed only
-- after its children (a rename rewrites the children's REFERENCES to follow
-- it) and dropped only after them: no implicit DELETE ever reaches a row that
-- something still references, and no ON DELETE CASCADE fires.

-- Services and their compute nodes.
ALTER TABLE compute_nodes RENAME TO compute_nodes_before_0082;
ALTER TABLE services RENAME TO services_before_0082;

CREATE TABLE services (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    host TEXT NOT NULL,
    binary_name TEXT NOT NULL,
    topic TEXT NOT NULL,
    disabled BIGINT NOT NULL DEFAULT 0,
    disabled_reason TEXT,
    forced_down BIGINT NOT NULL DEFAULT 0,
    last_seen_up TEXT,
    version TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT,
    UNIQUE (host, binary_name)
);
INSERT INTO services (id, uuid, host, binary_name, topic, disabled, disabled_reason, forced_down,
    last_seen_up, version, created_at, updated_at)
SELECT id, uuid, host, binary_name, topic, disabled, disabled_reason, forced_down,
    last_seen_up, version, created_at, updated_at
FROM services_before_0082 ORDER BY id;

CREATE TABLE compute_nodes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    service_id BIGINT NOT NULL REFERENCES services(id),
    host TEXT NOT NULL UNIQUE,
    hypervisor_hostname TEXT NOT NULL,
    vcpus BIGINT NOT NULL,
    memory_mb BIGINT NOT NULL,
    local_gb BIGINT NOT NULL,
    vcpus_used BIGINT NOT NULL DEFAULT 0,
    memory_mb_used BIGINT NOT NULL DEFAULT 0,
    local_gb_used BIGINT NOT NULL DEFAULT 0,
    running_vms BIGINT NOT NULL DEFAULT 0,
    num_io_ops BIGINT NOT NULL DEFAULT 0,
    failed_builds BIGINT NOT NULL DEFAULT 0,
    cpu_allocation_ratio DOUBLE PRECISION NOT NULL DEFAULT 4.0,
    ram_allocation_ratio DOUBLE PRECISION NOT NULL DEFAULT 1.0,
    disk_allocation_ratio DOUBLE PRECISION NOT NULL DEFAULT 1.0,
    reserved_host_memory_mb BIGINT NOT NULL DEFAULT 512,
    hypervisor_type TEXT NOT NULL,
    hypervisor_version BIGINT NOT NULL,
    cpu_info TEXT NOT NULL DEFAULT '{}',
    host_ip TEXT,
    supported_instances TEXT NOT NULL DEFAULT '[]',
    metrics TEXT NOT NULL DEFAULT '[]',
    generation BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT
);
INSERT INTO compute_nodes (id, uuid, service_id, host, hypervisor_hostname, vcpus, memory_mb, local_gb,
    vcpus_used, memory_mb_used, local_gb_used, running_vms, num_io_ops, failed_builds,
    cpu_allocation_ratio, ram_allocation_ratio, disk_allocation_ratio, reserved_host_memory_mb,
    hypervisor_type, hypervisor_version, cpu_info, host_ip, supported_instances, metrics, generation,
    created_at, updated_at)
SELECT id, uuid, service_id, host, hypervisor_hostname, vcpus, memory_mb, local_gb,
    vcpus_used, memory_mb_used, local_gb_used, running_vms, num_io_ops, failed_builds,
    cpu_allocation_ratio, ram_allocation_ratio, disk_allocation_ratio, reserved_host_memory_mb,
    hypervisor_type, hypervisor_version, cpu_info, host_ip, supported_instances, metrics, generation,
    created_at, updated_at
FROM compute_nodes_before_0082 ORDER BY id;

DROP TABLE compute_nodes_before_0082;
DROP TABLE services_before_0082;

-- Aggregates, their hosts and their metadata.
ALTER TABLE aggregate_hosts RENAME TO aggregate_hosts_before_0082;
ALTER TABLE aggregate_metadata RENAME TO aggregate_metadata_before_0082;
ALTER TABLE aggregates RENAME TO aggregates_before_0082;

CREATE TABLE aggregates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT
);
INSERT INTO aggregates (id, uuid, name, created_at, updated_at)
SELECT id, uuid, name, created_at, updated_at FROM aggregates_before_0082 ORDER BY id;

CREATE TABLE aggregate_hosts (
    aggregate_id BIGINT NOT NULL REFERENCES aggregates(id) ON DELETE CASCADE,
    host TEXT NOT NULL,
    PRIMARY KEY (aggregate_id, host)
);
INSERT INTO aggregate_hosts (aggregate_id, host)
SELECT aggregate_id, host FROM aggregate_hosts_before_0082;

CREATE TABLE aggregate_metadata (
    aggregate_id BIGINT NOT NULL REFERENCES aggregates(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (aggregate_id, key)
);
INSERT INTO aggregate_metadata (aggregate_id, key, value)
SELECT aggregate_id, key, value FROM aggregate_metadata_before_0082;

DROP TABLE aggregate_hosts_before_0082;
DROP TABLE aggregate_metadata_before_0082;
DROP TABLE aggregates_before_0082;

-- Key pairs: the id becomes the primary key, (user_id, name) stays unique.
-- Ids given twice before (see above) keep the id on their oldest row; the
-- others get new ids after the largest.
ALTER TABLE keypairs RENAME TO keypairs_before_0082;

CREATE TABLE keypairs (
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    public_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    key_type TEXT NOT NULL,
    created_at TEXT NOT NULL,
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    UNIQUE (user_id, name)
);
CREATE TEMPORARY TABLE keypairs_ranked_0082 AS
SELECT user_id, name, public_key, fingerprint, key_type, created_at, id,
    ROW_NUMBER() OVER (PARTITION BY id ORDER BY created_at, user_id, name) AS copy_number
FROM keypairs_before_0082;
INSERT INTO keypairs (user_id, name, public_key, fingerprint, key_type, created_at, id)
SELECT user_id, name, public_key, fingerprint, key_type, created_at, id
FROM keypairs_ranked_0082 WHERE copy_number = 1 ORDER BY id;
INSERT INTO keypairs (user_id, name, public_key, fingerprint, key_type, created_at)
SELECT user_id, name, public_key, fingerprint, key_type, created_at
FROM keypairs_ranked_0082 WHERE copy_number > 1 ORDER BY created_at, user_id, name;
DROP TABLE keypairs_ranked_0082;
DROP TABLE keypairs_before_0082;

-- Migrations: the id becomes the primary key, the uuid stays unique.
ALTER TABLE migrations RENAME TO migrations_before_0082;

CREATE TABLE migrations (
    uuid TEXT NOT NULL UNIQUE,
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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
INSERT INTO migrations (uuid, id, instance_uuid, migration_type, source_compute, source_node,
    dest_compute, dest_node, old_flavor, new_flavor, old_vm_state, user_id, project_id, status,
    created_at, updated_at)
SELECT uuid, id, instance_uuid, migration_type, source_compute, source_node,
    dest_compute, dest_node, old_flavor, new_flavor, old_vm_state, user_id, project_id, status,
    created_at, updated_at
FROM migrations_before_0082 ORDER BY id;
DROP TABLE migrations_before_0082;
CREATE INDEX migrations_instance ON migrations (instance_uuid, status);
