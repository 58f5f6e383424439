-- The identity's generation: a number the triggers of migration 0118 bump
-- whenever something a token check reads changes in a way that could make a
-- checked token invalid or change what it stands for (a user or project
-- updated or deleted, a role renamed or deleted, an assignment made or
-- removed, a token revoked). A controller keeps the tokens it checked with
-- the generation it read before checking them, and checks a token again
-- only when the generation moved: one read per request instead of five,
-- and every controller on the database sees every change at once.
CREATE TABLE identity_generation (
    id BIGINT PRIMARY KEY,
    generation BIGINT NOT NULL
);
INSERT INTO identity_generation (id, generation) VALUES (1, 0);
