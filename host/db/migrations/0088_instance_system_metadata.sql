-- Nova's instance system_metadata: what the services keep about an
-- instance that its users do not set (a shelved instance's
-- `shelved_at`, `shelved_image_id`, `shelved_host`).
CREATE TABLE instance_system_metadata (
    instance_uuid TEXT NOT NULL,
    meta_key TEXT NOT NULL,
    meta_value TEXT NOT NULL,
    PRIMARY KEY (instance_uuid, meta_key)
);
