-- The decision log (issue 15, "explain"; SQLite — migrations/postgres has
-- the same step for PostgreSQL): every scheduling decision, newest kept up
-- to `[scheduler] decision_log_size`, in the database every controller
-- shares, so any of them answers `GET /novum/v1/decisions/{request_id}`.
-- Written off the decision's path by each controller's log writer, which
-- trims the oldest rows after each batch. `record` is the whole decision
-- (novum_scheduler::explain::Decision) as JSON; the other columns are what
-- reads select and authorize on.
CREATE TABLE scheduling_decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    instance_uuid TEXT,
    project_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    outcome TEXT NOT NULL,
    controller TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX scheduling_decisions_request ON scheduling_decisions (request_id);
