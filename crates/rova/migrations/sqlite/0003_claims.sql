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
INSERT OR IGNORE INTO ip_allocations (subnet_id, ip_address, port_id)
    SELECT json_extract(f.value, '$.subnet_id'), json_extract(f.value, '$.ip_address'), ports.id
    FROM ports, json_each(ports.body, '$.fixed_ips') AS f
    WHERE json_extract(f.value, '$.subnet_id') IS NOT NULL
      AND json_extract(f.value, '$.ip_address') IS NOT NULL;

-- counters: integer id sequences (instance, migration); a process reserves
-- a block of ids at a time.
CREATE TABLE counters (
    name TEXT PRIMARY KEY NOT NULL,
    next INTEGER NOT NULL
);
CREATE INDEX instances_node ON instances (node);
