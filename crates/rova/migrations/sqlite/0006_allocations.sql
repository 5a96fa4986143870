-- allocations: the resources each consumer holds on a host, as Placement
-- keeps them: a server's own claim (keyed by its uuid) and the source
-- host a move holds for it (keyed by the migration's uuid). Every change
-- of a process's claims is written here in the order it was made; start-up
-- settling makes the rows of the servers it settles equal to what their
-- records imply.
CREATE TABLE allocations (
    id TEXT PRIMARY KEY NOT NULL,
    gen INTEGER NOT NULL DEFAULT 1,
    instance_uuid TEXT,
    host TEXT,
    vcpus INTEGER,
    memory_mb INTEGER,
    disk_gb INTEGER,
    body TEXT NOT NULL
);
CREATE INDEX allocations_instance_uuid ON allocations (instance_uuid);
CREATE INDEX allocations_host ON allocations (host);
