-- Compute: flavors, instances, compute services and nodes, claims, aggregates,
-- server groups, keypairs, instance actions, agent credentials, tasks and
-- conductor operations. Integers are BIGINT and booleans BIGINT 0/1 so that
-- they decode as i64 on SQLite and PostgreSQL alike; reals are DOUBLE PRECISION.

CREATE TABLE flavors (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    vcpus BIGINT NOT NULL,
    memory_mb BIGINT NOT NULL,
    root_gb BIGINT NOT NULL,
    ephemeral_gb BIGINT NOT NULL DEFAULT 0,
    swap BIGINT NOT NULL DEFAULT 0,
    rxtx_factor DOUBLE PRECISION NOT NULL DEFAULT 1.0,
    is_public BIGINT NOT NULL DEFAULT 1,
    disabled BIGINT NOT NULL DEFAULT 0,
    description TEXT,
    created_at TEXT NOT NULL
);

CREATE TABLE flavor_extra_specs (
    flavor_id TEXT NOT NULL REFERENCES flavors(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (flavor_id, key)
);

CREATE TABLE flavor_projects (
    flavor_id TEXT NOT NULL REFERENCES flavors(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL,
    PRIMARY KEY (flavor_id, project_id)
);

CREATE TABLE services (
    id BIGINT PRIMARY KEY,
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

CREATE TABLE compute_nodes (
    id BIGINT PRIMARY KEY,
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

CREATE TABLE server_groups (
    uuid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    policy TEXT NOT NULL,
    rules TEXT NOT NULL DEFAULT '{}',
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE server_group_members (
    group_uuid TEXT NOT NULL REFERENCES server_groups(uuid) ON DELETE CASCADE,
    instance_uuid TEXT NOT NULL,
    PRIMARY KEY (group_uuid, instance_uuid)
);

CREATE TABLE instances (
    uuid TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    description TEXT,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    flavor_id TEXT NOT NULL,
    flavor TEXT NOT NULL,
    image_ref TEXT NOT NULL DEFAULT '',
    image_properties TEXT NOT NULL DEFAULT '{}',
    vm_state TEXT NOT NULL,
    task_state TEXT,
    power_state BIGINT NOT NULL DEFAULT 0,
    host TEXT,
    node TEXT,
    availability_zone TEXT,
    requested_availability_zone TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    key_name TEXT,
    key_data TEXT,
    user_data TEXT,
    scheduler_hints TEXT NOT NULL DEFAULT '{}',
    server_group TEXT,
    fault TEXT,
    reservation_id TEXT NOT NULL,
    launch_index BIGINT NOT NULL DEFAULT 0,
    hostname TEXT NOT NULL DEFAULT '',
    config_drive TEXT NOT NULL DEFAULT '',
    locked BIGINT NOT NULL DEFAULT 0,
    launched_at TEXT,
    terminated_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    deleted BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX instances_project ON instances (project_id, deleted);
CREATE INDEX instances_host ON instances (host);
CREATE INDEX instances_created ON instances (created_at, uuid);

CREATE TABLE allocations (
    instance_uuid TEXT PRIMARY KEY,
    node_uuid TEXT NOT NULL,
    vcpus BIGINT NOT NULL,
    memory_mb BIGINT NOT NULL,
    disk_gb BIGINT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX allocations_node ON allocations (node_uuid);

CREATE TABLE aggregates (
    id BIGINT PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE TABLE aggregate_hosts (
    aggregate_id BIGINT NOT NULL REFERENCES aggregates(id) ON DELETE CASCADE,
    host TEXT NOT NULL,
    PRIMARY KEY (aggregate_id, host)
);

CREATE TABLE aggregate_metadata (
    aggregate_id BIGINT NOT NULL REFERENCES aggregates(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (aggregate_id, key)
);

CREATE TABLE keypairs (
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    public_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    key_type TEXT NOT NULL,
    created_at TEXT NOT NULL,
    id BIGINT NOT NULL,
    PRIMARY KEY (user_id, name)
);

CREATE TABLE instance_actions (
    id TEXT PRIMARY KEY,
    instance_uuid TEXT NOT NULL,
    action TEXT NOT NULL,
    request_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    message TEXT,
    start_time TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX instance_actions_instance ON instance_actions (instance_uuid, start_time);

CREATE TABLE instance_action_events (
    id TEXT PRIMARY KEY,
    action_id TEXT NOT NULL REFERENCES instance_actions(id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    start_time TEXT NOT NULL,
    finish_time TEXT,
    result TEXT,
    traceback TEXT,
    host TEXT,
    details TEXT
);

CREATE TABLE agent_credentials (
    host TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE conductor_operations (
    id TEXT PRIMARY KEY,
    instance_uuid TEXT NOT NULL,
    kind TEXT NOT NULL,
    step TEXT NOT NULL,
    state TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    request_id TEXT NOT NULL,
    action_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX conductor_operations_state ON conductor_operations (state);

CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    instance_uuid TEXT NOT NULL,
    operation_id TEXT NOT NULL,
    action TEXT NOT NULL,
    request_id TEXT,
    state TEXT NOT NULL,
    leased_until TEXT,
    offers BIGINT NOT NULL DEFAULT 0,
    result TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX tasks_host_state ON tasks (host, state);
