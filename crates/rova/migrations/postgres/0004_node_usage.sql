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
DECLARE
    old_vcpus BIGINT := 0;
    old_ram BIGINT := 0;
    new_vcpus BIGINT := 0;
    new_ram BIGINT := 0;
    old_counts BOOLEAN := false;
    new_counts BOOLEAN := false;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.node IS NOT NULL AND NOT COALESCE(OLD.deleted, false) THEN
        old_counts := true;
        old_vcpus := COALESCE((OLD.body->'flavor'->>'vcpus')::bigint, 0);
        old_ram := COALESCE((OLD.body->'flavor'->>'ram')::bigint, 0);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.node IS NOT NULL AND NOT COALESCE(NEW.deleted, false) THEN
        new_counts := true;
        new_vcpus := COALESCE((NEW.body->'flavor'->>'vcpus')::bigint, 0);
        new_ram := COALESCE((NEW.body->'flavor'->>'ram')::bigint, 0);
    END IF;
    -- The same usage on the same node (a vm_state change with the same
    -- flavor): nothing to do, and the node's row is not rewritten.
    IF old_counts AND new_counts AND OLD.node = NEW.node
       AND old_vcpus = new_vcpus AND old_ram = new_ram THEN
        RETURN NULL;
    END IF;
    IF old_counts THEN
        UPDATE node_usage SET vcpus = vcpus - old_vcpus, ram = ram - old_ram
         WHERE node = OLD.node;
    END IF;
    IF new_counts THEN
        INSERT INTO node_usage (node, vcpus, ram) VALUES (NEW.node, new_vcpus, new_ram)
        ON CONFLICT (node) DO UPDATE
           SET vcpus = node_usage.vcpus + EXCLUDED.vcpus,
               ram = node_usage.ram + EXCLUDED.ram;
    END IF;
    RETURN NULL;
END
$$;

-- Only rows on a node count. Rows whose node, deleted flag and vm_state
-- are unchanged leave the usage as it is (most instance writes: task and
-- power states). A flavor only changes with the vm_state (a resize
-- finishing, reverting or failing), and comparing columns spares parsing
-- two JSON documents per write.
CREATE TRIGGER instances_node_usage_insert
    AFTER INSERT ON instances
    FOR EACH ROW WHEN (NEW.node IS NOT NULL)
    EXECUTE FUNCTION rova_node_usage();
CREATE TRIGGER instances_node_usage_delete
    AFTER DELETE ON instances
    FOR EACH ROW WHEN (OLD.node IS NOT NULL)
    EXECUTE FUNCTION rova_node_usage();
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
