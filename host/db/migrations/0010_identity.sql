-- Identity (Keystone v3 subset). Only the implicit domain "default" exists;
-- domain_id columns keep room for more.
CREATE TABLE identity_projects (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    domain_id TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    UNIQUE (domain_id, name)
);

CREATE TABLE identity_users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    domain_id TEXT NOT NULL,
    -- argon2 PHC string; NULL: the user cannot authenticate with a password
    password_hash TEXT,
    default_project_id TEXT,
    email TEXT,
    description TEXT NOT NULL DEFAULT '',
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    UNIQUE (domain_id, name)
);

CREATE TABLE identity_roles (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE identity_role_assignments (
    user_id TEXT NOT NULL REFERENCES identity_users (id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES identity_projects (id) ON DELETE CASCADE,
    role_id TEXT NOT NULL REFERENCES identity_roles (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, project_id, role_id)
);
CREATE INDEX identity_role_assignments_project ON identity_role_assignments (project_id);

-- Revoked tokens by audit id, kept until the token would have expired anyway.
CREATE TABLE identity_revoked_tokens (
    audit_id TEXT PRIMARY KEY,
    expires_at TEXT NOT NULL,
    revoked_at TEXT NOT NULL
);
