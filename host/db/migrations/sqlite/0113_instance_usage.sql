-- What quota counts, kept by the database as instances change: per project,
-- user and flavor snapshot, the live instances (`deleted = 0`) and the sum of
-- their vcpus and memory_mb. A quota check reads a few rows of this table
-- instead of counting every instance of the project (which grew with the
-- project: ~25 ms per create at 10,000 instances, inside the project's write
-- transaction). Triggers write it in the same transaction as the instance
-- change, so it is exactly `SELECT COUNT(*), SUM(vcpus), SUM(memory_mb) …
-- WHERE deleted = 0 GROUP BY project_id, user_id, flavor` at every commit;
-- the suite test `instance_usage` holds it to that on both engines.
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

CREATE TRIGGER instance_usage_inserted AFTER INSERT ON instances
WHEN NEW.deleted = 0
BEGIN
    INSERT INTO instance_usage (project_id, user_id, flavor, instances, cores, ram)
    VALUES (NEW.project_id, NEW.user_id, NEW.flavor, 1, NEW.vcpus, NEW.memory_mb)
    ON CONFLICT (project_id, user_id, flavor) DO UPDATE SET
        instances = instances + 1, cores = cores + excluded.cores, ram = ram + excluded.ram;
END;

CREATE TRIGGER instance_usage_updated AFTER UPDATE OF deleted, project_id, user_id, flavor, vcpus, memory_mb ON instances
WHEN OLD.deleted IS NOT NEW.deleted OR OLD.project_id IS NOT NEW.project_id
  OR OLD.user_id IS NOT NEW.user_id OR OLD.flavor IS NOT NEW.flavor
  OR OLD.vcpus IS NOT NEW.vcpus OR OLD.memory_mb IS NOT NEW.memory_mb
BEGIN
    UPDATE instance_usage SET
        instances = instances - 1, cores = cores - OLD.vcpus, ram = ram - OLD.memory_mb
    WHERE OLD.deleted = 0 AND project_id = OLD.project_id AND user_id = OLD.user_id
      AND flavor = OLD.flavor;
    INSERT INTO instance_usage (project_id, user_id, flavor, instances, cores, ram)
    SELECT NEW.project_id, NEW.user_id, NEW.flavor, 1, NEW.vcpus, NEW.memory_mb
    WHERE NEW.deleted = 0
    ON CONFLICT (project_id, user_id, flavor) DO UPDATE SET
        instances = instances + 1, cores = cores + excluded.cores, ram = ram + excluded.ram;
END;

CREATE TRIGGER instance_usage_deleted AFTER DELETE ON instances
WHEN OLD.deleted = 0
BEGIN
    UPDATE instance_usage SET
        instances = instances - 1, cores = cores - OLD.vcpus, ram = ram - OLD.memory_mb
    WHERE project_id = OLD.project_id AND user_id = OLD.user_id AND flavor = OLD.flavor;
END;
