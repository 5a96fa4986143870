-- dashboard_sessions: the web dashboard's logged-in browsers, keyed by
-- the SHA-256 of the session cookie's id (the cookie itself is never
-- stored), each with its Keystone token, CSRF token and scope.
CREATE TABLE dashboard_sessions (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    user_id TEXT,
    expires_at TEXT,
    body JSON NOT NULL
);
