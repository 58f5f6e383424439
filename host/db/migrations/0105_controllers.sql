-- Several controllers on one database (issue 13).
-- Each running controller has a row here, renewed while it lives: a
-- controller whose row expired is dead, and the others adopt its work.
CREATE TABLE controllers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    started_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
-- The controller running an operation's scheduling step (NULL: none yet,
-- or the step was handed back).
ALTER TABLE conductor_operations ADD COLUMN owner TEXT;
CREATE INDEX conductor_operations_state_step ON conductor_operations (state, step);
-- The tasks queued lately, for the controllers whose agents' long polls
-- wait on another controller.
CREATE INDEX tasks_state_updated ON tasks (state, updated_at);
