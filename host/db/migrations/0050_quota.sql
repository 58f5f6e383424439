-- Quotas: limits per project (user_id '') or per user of a project, and per
-- quota class (only the `default` class takes part in the lookup:
-- project/user row -> `default` class row -> [quota] configuration).
CREATE TABLE quotas (
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL DEFAULT '',
    resource TEXT NOT NULL,
    hard_limit BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (project_id, user_id, resource)
);

CREATE TABLE quota_classes (
    class_name TEXT NOT NULL,
    resource TEXT NOT NULL,
    hard_limit BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (class_name, resource)
);

-- What an instance counts against the cores and ram quotas, so that usage is
-- a SUM in SQL. Whoever inserts or resizes an instance sets them: the
-- flavor's vcpus/memory_mb; while a resize awaits confirmation, the larger of
-- the old and the new flavor (per resource); after confirm the new flavor,
-- after revert the old one.
ALTER TABLE instances ADD COLUMN vcpus BIGINT NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN memory_mb BIGINT NOT NULL DEFAULT 0;
CREATE INDEX instances_project_user ON instances (project_id, user_id, deleted);
