-- volumes: the block storage service's volumes (Cinder's volumes table),
-- one row per volume, keyed by its uuid. The project, status and size are
-- columns: a project's volume count is counted from the rows in the
-- transaction that adds one (Cinder's volumes quota), and listing filters
-- on them.
CREATE TABLE volumes (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    project_id TEXT,
    status TEXT,
    size_gb BIGINT,
    display_name TEXT,
    body JSON NOT NULL
);
CREATE INDEX volumes_project_id ON volumes (project_id);
