-- The tasks offered to agents (queued, or leased with an expired lease),
-- found without reading the finished ones: each controller looks for them
-- every couple of seconds, for all hosts at once (conductor::tasks::offered_hosts).
CREATE INDEX tasks_state_lease ON tasks (state, leased_until);
