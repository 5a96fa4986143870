-- operations: one row per server with an operation in flight (a build, a
-- delete, an action with a task state), keyed by the server's uuid: what
-- the operation is (kind, the request that started it), the step it has
-- reached, the process running it and how many times it was taken up
-- again after its process died. The row is written before the server's
-- write that starts the operation and removed with the write that ends
-- it; start-up settling removes a row whose server has no operation in
-- flight.
CREATE TABLE operations (
    id TEXT PRIMARY KEY NOT NULL,
    gen INTEGER NOT NULL DEFAULT 1,
    kind TEXT,
    step TEXT,
    owner TEXT,
    attempts INTEGER,
    started_at TEXT,
    body TEXT NOT NULL
);
CREATE INDEX operations_owner ON operations (owner);
