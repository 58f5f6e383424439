-- What bumps the identity's generation (see migrations/0117).
CREATE FUNCTION identity_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE identity_generation SET generation = generation + 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER identity_users_bump_generation AFTER UPDATE OF name, domain_id, enabled OR DELETE ON identity_users
    FOR EACH STATEMENT EXECUTE FUNCTION identity_generation_bump();
CREATE TRIGGER identity_projects_bump_generation AFTER UPDATE OF name, domain_id, enabled OR DELETE ON identity_projects
    FOR EACH STATEMENT EXECUTE FUNCTION identity_generation_bump();
CREATE TRIGGER identity_roles_bump_generation AFTER UPDATE OF name OR DELETE ON identity_roles
    FOR EACH STATEMENT EXECUTE FUNCTION identity_generation_bump();
CREATE TRIGGER identity_role_assignments_bump_generation AFTER INSERT OR UPDATE OR DELETE ON identity_role_assignments
    FOR EACH STATEMENT EXECUTE FUNCTION identity_generation_bump();
CREATE TRIGGER identity_revoked_tokens_bump_generation AFTER INSERT ON identity_revoked_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION identity_generation_bump();
