-- Images (Glance v2 subset). Image data lives in <data_dir>/images/<id>.
CREATE TABLE images (
    id TEXT PRIMARY KEY,
    name TEXT,
    owner TEXT NOT NULL,
    status TEXT NOT NULL,
    visibility TEXT NOT NULL,
    protected INTEGER NOT NULL DEFAULT 0,
    os_hidden INTEGER NOT NULL DEFAULT 0,
    disk_format TEXT,
    container_format TEXT,
    min_disk BIGINT NOT NULL DEFAULT 0,
    min_ram BIGINT NOT NULL DEFAULT 0,
    size BIGINT,
    virtual_size BIGINT,
    checksum TEXT,
    os_hash_algo TEXT,
    os_hash_value TEXT,
    -- JSON array of strings
    tags TEXT NOT NULL DEFAULT '[]',
    -- JSON object of string values: the image's additional properties
    properties TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX images_owner ON images (owner);
CREATE INDEX images_created ON images (created_at, id);

-- Members of shared images: projects the owner shared the image with.
CREATE TABLE image_members (
    image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    member_id TEXT NOT NULL,
    -- pending, accepted or rejected
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (image_id, member_id)
);
