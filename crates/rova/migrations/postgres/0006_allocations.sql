-- allocations: the resources each consumer holds on a host, as Placement
-- keeps them: a server's own claim (keyed by its uuid) and the source
-- host a move holds for it (keyed by the migration's uuid). Every change
-- of a process's claims is written here in the order it was made; start-up
-- settling makes the rows of the servers it settles equal to what their
-- records imply.
CREATE TABLE allocations (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    instance_uuid TEXT,
    host TEXT,
    vcpus BIGINT,
    memory_mb BIGINT,
    disk_gb BIGINT,
    body JSON NOT NULL
);
CREATE INDEX allocations_instance_uuid ON allocations (instance_uuid);
CREATE INDEX allocations_host ON allocations (host);

-- From now on node_usage (the capacity guard's per-node sums) counts the
-- allocations instead of the instance rows, so what a move holds on its
-- source counts too. The instances' triggers go; the sums start empty and
-- fill as the allocations are written (the settling at start writes the
-- allocations of every server it settles).
DROP TRIGGER instances_node_usage_insert ON instances;
DROP TRIGGER instances_node_usage_delete ON instances;
DROP TRIGGER instances_node_usage_change ON instances;
DROP FUNCTION rova_node_usage();
DELETE FROM node_usage;

CREATE FUNCTION rova_allocation_usage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.host IS NOT NULL THEN
        UPDATE node_usage
           SET vcpus = vcpus - COALESCE(OLD.vcpus, 0), ram = ram - COALESCE(OLD.memory_mb, 0)
         WHERE node = OLD.host;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.host IS NOT NULL THEN
        INSERT INTO node_usage (node, vcpus, ram)
        VALUES (NEW.host, COALESCE(NEW.vcpus, 0), COALESCE(NEW.memory_mb, 0))
        ON CONFLICT (node) DO UPDATE
           SET vcpus = node_usage.vcpus + EXCLUDED.vcpus,
               ram = node_usage.ram + EXCLUDED.ram;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER allocations_node_usage_insert
    AFTER INSERT ON allocations
    FOR EACH ROW EXECUTE FUNCTION rova_allocation_usage();
CREATE TRIGGER allocations_node_usage_delete
    AFTER DELETE ON allocations
    FOR EACH ROW EXECUTE FUNCTION rova_allocation_usage();
CREATE TRIGGER allocations_node_usage_change
    AFTER UPDATE ON allocations
    FOR EACH ROW
    WHEN (OLD.host IS DISTINCT FROM NEW.host
          OR OLD.vcpus IS DISTINCT FROM NEW.vcpus
          OR OLD.memory_mb IS DISTINCT FROM NEW.memory_mb)
    EXECUTE FUNCTION rova_allocation_usage();
