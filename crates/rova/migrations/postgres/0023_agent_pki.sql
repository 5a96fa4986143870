-- The agent API's trust: the cloud's certificate authority (one row, id
-- `ca`: its certificate and key, so every control replica signs with the
-- same CA; only holders of database credentials can read it, and agents
-- hold none) and the one-time enrollment tokens (id: the SHA-256 of the
-- token, never the token itself; the host it enrolls and when it expires
-- are columns, and a redeemed token keeps its row, marked used).
CREATE TABLE cluster_cas (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    body JSON NOT NULL
);
CREATE TABLE enrollment_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    host TEXT,
    expires_at BIGINT,
    body JSON NOT NULL
);
