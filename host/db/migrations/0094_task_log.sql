-- Nova's task log: one row per periodic task run per host and period (the
-- instance usage audit), read by os-instance_usage_audit_log.
CREATE TABLE task_log (
    task_name TEXT NOT NULL,
    host TEXT NOT NULL,
    period_beginning TEXT NOT NULL,
    period_ending TEXT NOT NULL,
    state TEXT NOT NULL,
    task_items BIGINT NOT NULL DEFAULT 0,
    errors BIGINT NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (task_name, host, period_beginning, period_ending)
);
