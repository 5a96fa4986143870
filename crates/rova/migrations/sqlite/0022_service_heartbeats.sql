-- service_heartbeats: the last report of each service (Nova's
-- services.last_seen_up and report_count), one row per binary and host
-- (id `<binary>@<host>`), apart from the services table's admin state
-- so that a heartbeat never races an operator's disable or force-down.
-- A service is up while its row is younger than service_down_time.
CREATE TABLE service_heartbeats (
    id TEXT PRIMARY KEY NOT NULL,
    gen INTEGER NOT NULL DEFAULT 1,
    "binary" TEXT,
    host TEXT,
    body TEXT NOT NULL
);
