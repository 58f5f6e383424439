-- What a query task (console output, serial console endpoint) found, as
-- the agent reported it (novum-wire's TaskAnswer, JSON); NULL for every
-- other task. The API request that asked waits for it.
ALTER TABLE tasks ADD COLUMN answer TEXT;
-- Nova's console_auth_tokens: one row per console URL handed out. Only the
-- SHA-256 of the token is kept; the console proxy takes a row once (it is
-- deleted when used) and refuses it after expires_at.
CREATE TABLE console_auth_tokens (
    token_hash TEXT PRIMARY KEY,
    console_type TEXT NOT NULL,
    host TEXT NOT NULL,
    port BIGINT NOT NULL,
    instance_uuid TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX console_auth_tokens_instance ON console_auth_tokens (instance_uuid);
CREATE INDEX console_auth_tokens_expires ON console_auth_tokens (expires_at);
