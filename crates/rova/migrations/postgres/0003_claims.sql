-- Invariants the database keeps for every process that shares it.
--
-- ip_allocations: each fixed IP of a port, unique per subnet. A port's
-- rows are rewritten with the port in the same transaction, so two ports
-- (of any process) can never hold one address.
CREATE TABLE ip_allocations (
    subnet_id TEXT NOT NULL,
    ip_address TEXT NOT NULL,
    port_id TEXT NOT NULL,
    PRIMARY KEY (subnet_id, ip_address)
);
CREATE INDEX ip_allocations_port_id ON ip_allocations (port_id);
INSERT INTO ip_allocations (subnet_id, ip_address, port_id)
    SELECT f->>'subnet_id', f->>'ip_address', ports.id
    FROM ports, json_array_elements(ports.body->'fixed_ips') AS f
    WHERE f->>'subnet_id' IS NOT NULL AND f->>'ip_address' IS NOT NULL
    ON CONFLICT DO NOTHING;

-- counters: integer id sequences (instance, migration); a process reserves
-- a block of ids at a time.
CREATE TABLE counters (
    name TEXT PRIMARY KEY NOT NULL,
    next BIGINT NOT NULL
);
CREATE INDEX instances_node ON instances (node);
