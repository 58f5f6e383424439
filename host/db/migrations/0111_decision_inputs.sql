-- What a replay needs (issue 15, "replay"): a scheduling decision's inputs
-- — the request whole and the hosts as its plugins saw them — as deflated
-- JSON in base64 (novum_scheduler::whatif::DecisionInputs::encode). Kept on
-- the newest `[scheduler] decision_replay_size` rows only: the log's writer
-- sets it NULL on older rows after each batch.
ALTER TABLE scheduling_decisions ADD COLUMN inputs TEXT;
