-- Rova's first relational schema: one table per resource kind, keyed by
-- the record's id. `gen` counts the writes to a row; the named columns
-- are the record's keys (what lists filter, sort and join on) and `body`
-- is the whole record as a JSON document.

CREATE TABLE instances (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    instance_id BIGINT,
    project_id TEXT,
    user_id TEXT,
    display_name TEXT,
    host TEXT,
    node TEXT,
    vm_state TEXT,
    task_state TEXT,
    deleted BOOLEAN,
    created_at TEXT,
    updated_at TEXT,
    body JSON NOT NULL
);
CREATE INDEX instances_project_id_created_at ON instances (project_id, created_at);
CREATE INDEX instances_host ON instances (host);
CREATE INDEX instances_updated_at ON instances (updated_at);
CREATE INDEX instances_display_name ON instances (display_name);

CREATE TABLE instance_actions (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    body JSON NOT NULL
);

CREATE TABLE migrations (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    migration_id BIGINT,
    instance_uuid TEXT,
    status TEXT,
    source_compute TEXT,
    dest_compute TEXT,
    created_at TEXT,
    body JSON NOT NULL
);
CREATE INDEX migrations_instance_uuid ON migrations (instance_uuid);

CREATE TABLE flavors (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    name TEXT,
    is_public BOOLEAN,
    disabled BOOLEAN,
    body JSON NOT NULL
);

CREATE TABLE keypairs (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    user_id TEXT,
    name TEXT,
    body JSON NOT NULL
);
CREATE INDEX keypairs_user_id_name ON keypairs (user_id, name);

CREATE TABLE server_groups (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    project_id TEXT,
    name TEXT,
    body JSON NOT NULL
);
CREATE INDEX server_groups_project_id ON server_groups (project_id);

CREATE TABLE quotas (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    project_id TEXT,
    body JSON NOT NULL
);

CREATE TABLE console_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    instance_uuid TEXT,
    expires TEXT,
    body JSON NOT NULL
);
CREATE INDEX console_tokens_instance_uuid ON console_tokens (instance_uuid);

CREATE TABLE services (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    "binary" TEXT,
    host TEXT,
    body JSON NOT NULL
);

CREATE TABLE live_migration_controls (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    body JSON NOT NULL
);

CREATE TABLE id_counters (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    body JSON NOT NULL
);

CREATE TABLE images (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    owner TEXT,
    name TEXT,
    status TEXT,
    visibility TEXT,
    created_at TEXT,
    body JSON NOT NULL
);
CREATE INDEX images_owner ON images (owner);
CREATE INDEX images_visibility ON images (visibility);

CREATE TABLE networks (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    project_id TEXT,
    name TEXT,
    shared BOOLEAN,
    body JSON NOT NULL
);
CREATE INDEX networks_project_id ON networks (project_id);

CREATE TABLE subnets (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    network_id TEXT,
    project_id TEXT,
    cidr TEXT,
    body JSON NOT NULL
);
CREATE INDEX subnets_network_id ON subnets (network_id);

CREATE TABLE ports (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    network_id TEXT,
    project_id TEXT,
    device_id TEXT,
    mac_address TEXT,
    body JSON NOT NULL
);
CREATE INDEX ports_network_id ON ports (network_id);
CREATE INDEX ports_device_id ON ports (device_id);
CREATE INDEX ports_project_id ON ports (project_id);

CREATE TABLE security_groups (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    project_id TEXT,
    name TEXT,
    body JSON NOT NULL
);
CREATE INDEX security_groups_project_id ON security_groups (project_id);

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    name TEXT,
    domain_id TEXT,
    body JSON NOT NULL
);

CREATE TABLE projects (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    name TEXT,
    domain_id TEXT,
    body JSON NOT NULL
);

CREATE TABLE token_revocations (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    body JSON NOT NULL
);

CREATE TABLE clock_offsets (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    body JSON NOT NULL
);

CREATE TABLE sim_faults (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    body JSON NOT NULL
);
