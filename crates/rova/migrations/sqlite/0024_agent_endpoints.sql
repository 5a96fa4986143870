-- agent_endpoints: where each registered agent serves the agent API (id:
-- its host name), written when the agent registers, so that any control
-- replica can send that host's work to it.
CREATE TABLE agent_endpoints (
    id TEXT PRIMARY KEY NOT NULL,
    gen INTEGER NOT NULL DEFAULT 1,
    body TEXT NOT NULL
);
