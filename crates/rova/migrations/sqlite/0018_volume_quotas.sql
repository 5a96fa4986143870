-- volume_quotas: the block storage service's per-project quota limits
-- (Cinder's quotas table), one row per project that has limits of its
-- own, keyed by the project id; a project without a row has Cinder's
-- defaults. The limits are a document (resource → limit, -1 unlimited).
CREATE TABLE volume_quotas (
    id TEXT PRIMARY KEY NOT NULL,
    gen INTEGER NOT NULL DEFAULT 1,
    body TEXT NOT NULL
);
