-- node_usage: the vCPUs and RAM (MB) of the instances on each node that
-- are not deleted, kept by a trigger on instances, so that the capacity
-- guard of a scheduling write reads one row instead of summing the node's
-- instances (which grows with the fleet).
CREATE TABLE node_usage (
    node TEXT PRIMARY KEY NOT NULL,
    vcpus BIGINT NOT NULL DEFAULT 0,
    ram BIGINT NOT NULL DEFAULT 0
);

CREATE FUNCTION rova_node_usage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.node IS NOT NULL AND NOT COALESCE(OLD.deleted, false) THEN
        UPDATE node_usage
           SET vcpus = vcpus - COALESCE((OLD.body->'flavor'->>'vcpus')::bigint, 0),
               ram = ram - COALESCE((OLD.body->'flavor'->>'ram')::bigint, 0)
         WHERE node = OLD.node;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.node IS NOT NULL AND NOT COALESCE(NEW.deleted, false) THEN
        INSERT INTO node_usage (node, vcpus, ram)
        VALUES (NEW.node,
                COALESCE((NEW.body->'flavor'->>'vcpus')::bigint, 0),
                COALESCE((NEW.body->'flavor'->>'ram')::bigint, 0))
        ON CONFLICT (node) DO UPDATE
           SET vcpus = node_usage.vcpus + EXCLUDED.vcpus,
               ram = node_usage.ram + EXCLUDED.ram;
    END IF;
    RETURN NULL;
END
$$;

-- Rows whose node, deleted flag and vm_state are unchanged leave the usage
-- as it is (most instance writes: task and power states). A flavor only
-- changes with the vm_state (a resize finishing, reverting or failing), and
-- comparing columns spares parsing two JSON documents per write.
CREATE TRIGGER instances_node_usage_write
    AFTER INSERT OR DELETE ON instances
    FOR EACH ROW EXECUTE FUNCTION rova_node_usage();
CREATE TRIGGER instances_node_usage_change
    AFTER UPDATE ON instances
    FOR EACH ROW
    WHEN (OLD.node IS DISTINCT FROM NEW.node
          OR OLD.deleted IS DISTINCT FROM NEW.deleted
          OR OLD.vm_state IS DISTINCT FROM NEW.vm_state)
    EXECUTE FUNCTION rova_node_usage();

INSERT INTO node_usage (node, vcpus, ram)
    SELECT node,
           COALESCE(sum((body->'flavor'->>'vcpus')::bigint), 0),
           COALESCE(sum((body->'flavor'->>'ram')::bigint), 0)
      FROM instances
     WHERE node IS NOT NULL AND NOT COALESCE(deleted, false)
     GROUP BY node;
