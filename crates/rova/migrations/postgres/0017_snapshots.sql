-- snapshots: the block storage service's volume snapshots (Cinder's
-- snapshots table), one row per snapshot, keyed by its uuid. The project,
-- volume, status and size are columns: a project's snapshot count is
-- counted from the rows in the transaction that adds one (Cinder's
-- snapshots quota), a volume's snapshots are found by its id (a volume
-- with snapshots is not deleted), and listing filters on them.
CREATE TABLE snapshots (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    project_id TEXT,
    volume_id TEXT,
    status TEXT,
    size_gb BIGINT,
    display_name TEXT,
    body JSON NOT NULL
);
CREATE INDEX snapshots_project_id ON snapshots (project_id);
CREATE INDEX snapshots_volume_id ON snapshots (volume_id);
