-- Server tags (Compute API 2.26): a set of strings per instance, at most 50,
-- each 1 to 60 characters without '/' or ','.
CREATE TABLE instance_tags (
    instance_uuid TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (instance_uuid, tag)
);
CREATE INDEX instance_tags_tag ON instance_tags (tag);
