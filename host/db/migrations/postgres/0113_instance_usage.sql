-- What quota counts, kept by the database as instances change (PostgreSQL;
-- see migrations/sqlite/0113 for what the table means). One function for
-- every change; when an update moves an instance from one row to another
-- (a resize changes its flavor), the two rows are locked in key order, so
-- two such moves in opposite directions cannot deadlock.
CREATE TABLE instance_usage (
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    flavor TEXT NOT NULL,
    instances BIGINT NOT NULL DEFAULT 0,
    cores BIGINT NOT NULL DEFAULT 0,
    ram BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, user_id, flavor)
);

INSERT INTO instance_usage (project_id, user_id, flavor, instances, cores, ram)
SELECT project_id, user_id, flavor, COUNT(*), SUM(vcpus), SUM(memory_mb)
FROM instances WHERE deleted = 0 GROUP BY project_id, user_id, flavor;

CREATE FUNCTION instance_usage_add(p TEXT, u TEXT, f TEXT, n BIGINT, c BIGINT, r BIGINT)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO instance_usage (project_id, user_id, flavor, instances, cores, ram)
    VALUES (p, u, f, n, c, r)
    ON CONFLICT (project_id, user_id, flavor) DO UPDATE SET
        instances = instance_usage.instances + EXCLUDED.instances,
        cores = instance_usage.cores + EXCLUDED.cores,
        ram = instance_usage.ram + EXCLUDED.ram;
END
$$;

CREATE FUNCTION instance_usage_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_first BOOLEAN;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.deleted = 0 THEN
            PERFORM instance_usage_add(NEW.project_id, NEW.user_id, NEW.flavor, 1, NEW.vcpus, NEW.memory_mb);
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        IF OLD.deleted = 0 THEN
            PERFORM instance_usage_add(OLD.project_id, OLD.user_id, OLD.flavor, -1, -OLD.vcpus, -OLD.memory_mb);
        END IF;
    ELSE
        old_first := (OLD.project_id, OLD.user_id, OLD.flavor) <= (NEW.project_id, NEW.user_id, NEW.flavor);
        IF old_first AND OLD.deleted = 0 THEN
            PERFORM instance_usage_add(OLD.project_id, OLD.user_id, OLD.flavor, -1, -OLD.vcpus, -OLD.memory_mb);
        END IF;
        IF NEW.deleted = 0 THEN
            PERFORM instance_usage_add(NEW.project_id, NEW.user_id, NEW.flavor, 1, NEW.vcpus, NEW.memory_mb);
        END IF;
        IF NOT old_first AND OLD.deleted = 0 THEN
            PERFORM instance_usage_add(OLD.project_id, OLD.user_id, OLD.flavor, -1, -OLD.vcpus, -OLD.memory_mb);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER instance_usage_inserted AFTER INSERT OR DELETE ON instances
FOR EACH ROW EXECUTE FUNCTION instance_usage_changed();
CREATE TRIGGER instance_usage_updated AFTER UPDATE ON instances
FOR EACH ROW WHEN (OLD.deleted IS DISTINCT FROM NEW.deleted
  OR OLD.project_id IS DISTINCT FROM NEW.project_id OR OLD.user_id IS DISTINCT FROM NEW.user_id
  OR OLD.flavor IS DISTINCT FROM NEW.flavor OR OLD.vcpus IS DISTINCT FROM NEW.vcpus
  OR OLD.memory_mb IS DISTINCT FROM NEW.memory_mb)
EXECUTE FUNCTION instance_usage_changed();
