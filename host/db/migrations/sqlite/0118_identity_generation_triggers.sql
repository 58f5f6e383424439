-- What bumps the identity's generation (see migrations/0117).
CREATE TRIGGER identity_users_update_bumps_generation AFTER UPDATE OF name, domain_id, enabled ON identity_users
BEGIN
    UPDATE identity_generation SET generation = generation + 1;
END;
CREATE TRIGGER identity_users_delete_bumps_generation AFTER DELETE ON identity_users
BEGIN
    UPDATE identity_generation SET generation = generation + 1;
END;
CREATE TRIGGER identity_projects_update_bumps_generation AFTER UPDATE OF name, domain_id, enabled ON identity_projects
BEGIN
    UPDATE identity_generation SET generation = generation + 1;
END;
CREATE TRIGGER identity_projects_delete_bumps_generation AFTER DELETE ON identity_projects
BEGIN
    UPDATE identity_generation SET generation = generation + 1;
END;
CREATE TRIGGER identity_roles_update_bumps_generation AFTER UPDATE OF name ON identity_roles
BEGIN
    UPDATE identity_generation SET generation = generation + 1;
END;
CREATE TRIGGER identity_roles_delete_bumps_generation AFTER DELETE ON identity_roles
BEGIN
    UPDATE identity_generation SET generation = generation + 1;
END;
CREATE TRIGGER identity_role_assignments_insert_bumps_generation AFTER INSERT ON identity_role_assignments
BEGIN
    UPDATE identity_generation SET generation = generation + 1;
END;
CREATE TRIGGER identity_role_assignments_update_bumps_generation AFTER UPDATE ON identity_role_assignments
BEGIN
    UPDATE identity_generation SET generation = generation + 1;
END;
CREATE TRIGGER identity_role_assignments_delete_bumps_generation AFTER DELETE ON identity_role_assignments
BEGIN
    UPDATE identity_generation SET generation = generation + 1;
END;
CREATE TRIGGER identity_revoked_tokens_insert_bumps_generation AFTER INSERT ON identity_revoked_tokens
BEGIN
    UPDATE identity_generation SET generation = generation + 1;
END;
