-- The change log of the scheduler's host state (SQLite; migrations/postgres
-- has the same step for PostgreSQL). Each controller keeps every host's state
-- in memory and, before a decision, reads the rows added since it last
-- looked: a row names a host whose state changed (its node's resources,
-- ratios, traits or failed builds; an instance placed on it, moved off it,
-- deleted, or rebuilt with other image properties; its service disabled or
-- forced down), or no host when aggregates changed (zones and aggregate
-- membership are re-derived for every host). Triggers write the rows, so no
-- writer can forget one. Liveness (`services.last_seen_up`) is not logged:
-- it is re-read on its own cadence. The reaper prunes rows older than the
-- retention by `changed_at_ms` (milliseconds since the Unix epoch).
CREATE TABLE host_state_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    host TEXT,
    changed_at_ms BIGINT NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
);
CREATE INDEX host_state_changes_age ON host_state_changes (changed_at_ms);

CREATE TRIGGER host_state_node_inserted AFTER INSERT ON compute_nodes
BEGIN
    INSERT INTO host_state_changes (host) VALUES (NEW.host);
END;

CREATE TRIGGER host_state_node_updated AFTER UPDATE ON compute_nodes
WHEN OLD.host IS NOT NEW.host OR OLD.uuid IS NOT NEW.uuid
  OR OLD.vcpus IS NOT NEW.vcpus OR OLD.memory_mb IS NOT NEW.memory_mb OR OLD.local_gb IS NOT NEW.local_gb
  OR OLD.vcpus_used IS NOT NEW.vcpus_used OR OLD.memory_mb_used IS NOT NEW.memory_mb_used
  OR OLD.local_gb_used IS NOT NEW.local_gb_used OR OLD.running_vms IS NOT NEW.running_vms
  OR OLD.num_io_ops IS NOT NEW.num_io_ops OR OLD.failed_builds IS NOT NEW.failed_builds
  OR OLD.cpu_allocation_ratio IS NOT NEW.cpu_allocation_ratio
  OR OLD.ram_allocation_ratio IS NOT NEW.ram_allocation_ratio
  OR OLD.disk_allocation_ratio IS NOT NEW.disk_allocation_ratio
  OR OLD.reserved_host_memory_mb IS NOT NEW.reserved_host_memory_mb
  OR OLD.hypervisor_type IS NOT NEW.hypervisor_type OR OLD.hypervisor_version IS NOT NEW.hypervisor_version
  OR OLD.cpu_info IS NOT NEW.cpu_info OR OLD.host_ip IS NOT NEW.host_ip
  OR OLD.supported_instances IS NOT NEW.supported_instances OR OLD.metrics IS NOT NEW.metrics
BEGIN
    INSERT INTO host_state_changes (host) VALUES (OLD.host);
    INSERT INTO host_state_changes (host) SELECT NEW.host WHERE NEW.host IS NOT OLD.host;
END;

CREATE TRIGGER host_state_node_deleted AFTER DELETE ON compute_nodes
BEGIN
    INSERT INTO host_state_changes (host) VALUES (OLD.host);
END;

CREATE TRIGGER host_state_instance_inserted AFTER INSERT ON instances
WHEN NEW.host IS NOT NULL
BEGIN
    INSERT INTO host_state_changes (host) VALUES (NEW.host);
END;

CREATE TRIGGER host_state_instance_updated AFTER UPDATE ON instances
WHEN OLD.host IS NOT NEW.host OR OLD.deleted IS NOT NEW.deleted
  OR OLD.server_group IS NOT NEW.server_group OR OLD.image_properties IS NOT NEW.image_properties
BEGIN
    INSERT INTO host_state_changes (host) SELECT OLD.host WHERE OLD.host IS NOT NULL;
    INSERT INTO host_state_changes (host) SELECT NEW.host
        WHERE NEW.host IS NOT NULL AND NEW.host IS NOT OLD.host;
END;

CREATE TRIGGER host_state_instance_deleted AFTER DELETE ON instances
WHEN OLD.host IS NOT NULL
BEGIN
    INSERT INTO host_state_changes (host) VALUES (OLD.host);
END;

CREATE TRIGGER host_state_service_updated AFTER UPDATE ON services
WHEN OLD.disabled IS NOT NEW.disabled OR OLD.forced_down IS NOT NEW.forced_down
BEGIN
    INSERT INTO host_state_changes (host) VALUES (NEW.host);
END;

CREATE TRIGGER host_state_aggregate_inserted AFTER INSERT ON aggregates
BEGIN INSERT INTO host_state_changes (host) VALUES (NULL); END;
CREATE TRIGGER host_state_aggregate_updated AFTER UPDATE ON aggregates
WHEN OLD.name IS NOT NEW.name
BEGIN INSERT INTO host_state_changes (host) VALUES (NULL); END;
CREATE TRIGGER host_state_aggregate_deleted AFTER DELETE ON aggregates
BEGIN INSERT INTO host_state_changes (host) VALUES (NULL); END;
CREATE TRIGGER host_state_aggregate_host_inserted AFTER INSERT ON aggregate_hosts
BEGIN INSERT INTO host_state_changes (host) VALUES (NULL); END;
CREATE TRIGGER host_state_aggregate_host_deleted AFTER DELETE ON aggregate_hosts
BEGIN INSERT INTO host_state_changes (host) VALUES (NULL); END;
CREATE TRIGGER host_state_aggregate_metadata_inserted AFTER INSERT ON aggregate_metadata
BEGIN INSERT INTO host_state_changes (host) VALUES (NULL); END;
CREATE TRIGGER host_state_aggregate_metadata_updated AFTER UPDATE ON aggregate_metadata
BEGIN INSERT INTO host_state_changes (host) VALUES (NULL); END;
CREATE TRIGGER host_state_aggregate_metadata_deleted AFTER DELETE ON aggregate_metadata
BEGIN INSERT INTO host_state_changes (host) VALUES (NULL); END;
