-- Indexes for the reads the database answers (issue 13): a page of a
-- project's live servers in the default order (created_at, uuid) without
-- reading its deleted ones, the same across projects for admins, the
-- changes-since window, and usage's walk in (project_id, uuid) order.
-- (project_id, deleted, created_at, uuid) covers what (project_id,
-- deleted) served.
DROP INDEX instances_project;
CREATE INDEX instances_project_live ON instances (project_id, deleted, created_at, uuid);
CREATE INDEX instances_live ON instances (deleted, created_at, uuid);
CREATE INDEX instances_updated ON instances (updated_at);
CREATE INDEX instances_project_uuid ON instances (project_id, uuid);
CREATE INDEX compute_nodes_service ON compute_nodes (service_id);
