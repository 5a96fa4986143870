-- resource_providers: each compute node's inventory, as Placement keeps
-- it (one row per node, keyed by the node's uuid, named by its hypervisor
-- hostname). The capacity columns are what the allocations on the node may
-- add up to (allocation ratios and reserved memory applied); the capacity
-- guard of a claim reads them in the claiming transaction. Each process
-- registers the hosts it serves when it starts.
CREATE TABLE resource_providers (
    id TEXT PRIMARY KEY NOT NULL,
    gen INTEGER NOT NULL DEFAULT 1,
    name TEXT,
    vcpu_capacity INTEGER,
    memory_capacity INTEGER,
    disk_capacity INTEGER,
    body TEXT NOT NULL
);
CREATE UNIQUE INDEX resource_providers_name ON resource_providers (name);
