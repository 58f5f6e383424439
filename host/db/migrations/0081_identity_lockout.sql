-- Keystone-style lockout ([identity] lockout_failure_attempts and
-- lockout_duration): consecutive failed password authentications of a user,
-- and when the last one happened (a timestamp as db::timestamp writes it).
ALTER TABLE identity_users ADD COLUMN failed_auth_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE identity_users ADD COLUMN failed_auth_at TEXT;
