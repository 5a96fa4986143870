-- Leases: one row per named duty (a periodic task, later an operation) that
-- exactly one process may carry out at a time. A process holds a lease
-- until `expires_at` (milliseconds since the epoch) and renews it before
-- then; once it has expired any process may take it.
CREATE TABLE leases (
    name TEXT PRIMARY KEY NOT NULL,
    owner TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
