-- The built-in Network API (Neutron v2.0 subset, crate novum-network):
-- networks, subnets, ports, their IP allocations, security groups and rules.
-- Ids are uuids (TEXT), booleans INTEGER 0/1, timestamps RFC 3339 TEXT, lists
-- whose order matters are child rows with a position.
--
-- Invariants kept by the schema:
-- - an address is handed out once per subnet: UNIQUE (subnet_id, ip_address)
--   on network_ip_allocations (the IPAM guard under the serialized
--   allocation transaction);
-- - a MAC address once per network: UNIQUE (network_id, mac_address);
-- - one `default` security group per project: the project is the primary key
--   of network_default_security_groups.
-- Network quotas are rows of `quotas` (0050) with user_id '' and the
-- resources network, subnet, port, security_group, security_group_rule.

CREATE TABLE networks (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    admin_state_up INTEGER NOT NULL DEFAULT 1,
    shared INTEGER NOT NULL DEFAULT 0,
    router_external INTEGER NOT NULL DEFAULT 0,
    mtu BIGINT NOT NULL,
    status TEXT NOT NULL,
    network_type TEXT,
    physical_network TEXT,
    segmentation_id BIGINT,
    port_security_enabled INTEGER NOT NULL DEFAULT 1,
    -- The network get-me-a-network hands out (auto-allocated topology).
    is_default INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision_number BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX networks_project ON networks (project_id);

CREATE TABLE subnets (
    id TEXT PRIMARY KEY,
    network_id TEXT NOT NULL REFERENCES networks (id),
    project_id TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    ip_version BIGINT NOT NULL,
    cidr TEXT NOT NULL,
    gateway_ip TEXT,
    enable_dhcp INTEGER NOT NULL DEFAULT 1,
    ipv6_ra_mode TEXT,
    ipv6_address_mode TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision_number BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX subnets_network ON subnets (network_id);
CREATE INDEX subnets_project ON subnets (project_id);

-- Allocation pools, first and last address (inclusive), in order.
CREATE TABLE subnet_allocation_pools (
    subnet_id TEXT NOT NULL REFERENCES subnets (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    first_ip TEXT NOT NULL,
    last_ip TEXT NOT NULL,
    PRIMARY KEY (subnet_id, position)
);

-- DNS name servers, in the order given (the order is the resolver's).
CREATE TABLE subnet_dns_nameservers (
    subnet_id TEXT NOT NULL REFERENCES subnets (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    address TEXT NOT NULL,
    PRIMARY KEY (subnet_id, position)
);

CREATE TABLE subnet_host_routes (
    subnet_id TEXT NOT NULL REFERENCES subnets (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    destination TEXT NOT NULL,
    nexthop TEXT NOT NULL,
    PRIMARY KEY (subnet_id, position)
);

CREATE TABLE ports (
    id TEXT PRIMARY KEY,
    network_id TEXT NOT NULL REFERENCES networks (id),
    project_id TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    mac_address TEXT NOT NULL,
    admin_state_up INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL,
    device_id TEXT NOT NULL DEFAULT '',
    device_owner TEXT NOT NULL DEFAULT '',
    binding_host_id TEXT NOT NULL DEFAULT '',
    binding_vif_type TEXT NOT NULL DEFAULT 'unbound',
    binding_vnic_type TEXT NOT NULL DEFAULT 'normal',
    port_security_enabled INTEGER NOT NULL DEFAULT 1,
    -- 1: compute created the port for its instance (deleted with it);
    -- 0: the user's port (unbound and kept when the instance goes).
    created_for_instance INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision_number BIGINT NOT NULL DEFAULT 1,
    UNIQUE (network_id, mac_address)
);
CREATE INDEX ports_project ON ports (project_id);
CREATE INDEX ports_device ON ports (device_id);

-- Fixed IPs of ports: the IPAM's record of what is handed out.
CREATE TABLE network_ip_allocations (
    port_id TEXT NOT NULL REFERENCES ports (id) ON DELETE CASCADE,
    subnet_id TEXT NOT NULL REFERENCES subnets (id),
    network_id TEXT NOT NULL,
    ip_address TEXT NOT NULL,
    -- The order of the port's fixed_ips.
    position BIGINT NOT NULL,
    PRIMARY KEY (subnet_id, ip_address)
);
CREATE INDEX network_ip_allocations_port ON network_ip_allocations (port_id);

CREATE TABLE port_allowed_address_pairs (
    port_id TEXT NOT NULL REFERENCES ports (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    ip_address TEXT NOT NULL,
    mac_address TEXT NOT NULL,
    PRIMARY KEY (port_id, position)
);

CREATE TABLE security_groups (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    stateful INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision_number BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX security_groups_project ON security_groups (project_id);

-- The `default` group of each project: one row per project, so concurrent
-- first uses agree on one group.
CREATE TABLE network_default_security_groups (
    project_id TEXT PRIMARY KEY,
    security_group_id TEXT NOT NULL REFERENCES security_groups (id) ON DELETE CASCADE
);

CREATE TABLE security_group_rules (
    id TEXT PRIMARY KEY,
    security_group_id TEXT NOT NULL REFERENCES security_groups (id) ON DELETE CASCADE,
    project_id TEXT NOT NULL,
    direction TEXT NOT NULL,
    ethertype TEXT NOT NULL,
    protocol TEXT,
    port_range_min BIGINT,
    port_range_max BIGINT,
    remote_ip_prefix TEXT,
    remote_group_id TEXT REFERENCES security_groups (id) ON DELETE CASCADE,
    description TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision_number BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX security_group_rules_group ON security_group_rules (security_group_id);
CREATE INDEX security_group_rules_project ON security_group_rules (project_id);

CREATE TABLE port_security_group_bindings (
    port_id TEXT NOT NULL REFERENCES ports (id) ON DELETE CASCADE,
    security_group_id TEXT NOT NULL REFERENCES security_groups (id),
    PRIMARY KEY (port_id, security_group_id)
);
CREATE INDEX port_security_group_bindings_group ON port_security_group_bindings (security_group_id);
