-- A server's instance actions become rows of their own (Nova's
-- instance_actions): one per action, keyed `<server>/<seq>` (seq: the
-- action's place among the server's, six digits), with the server, the
-- request id and the action as columns. The logs that listed a server's
-- actions in one document are split into these rows, in order, and go.
ALTER TABLE instance_actions RENAME TO instance_action_logs;
CREATE TABLE instance_actions (
    id TEXT PRIMARY KEY NOT NULL,
    gen INTEGER NOT NULL DEFAULT 1,
    instance_uuid TEXT,
    request_id TEXT,
    action TEXT,
    body TEXT NOT NULL
);
CREATE INDEX instance_actions_instance_uuid ON instance_actions (instance_uuid);
INSERT OR IGNORE INTO instance_actions (id, gen, instance_uuid, request_id, action, body)
SELECT l.id || '/' || printf('%06d', a.key), 1, l.id,
       json_extract(a.value, '$.request_id'), json_extract(a.value, '$.action'),
       json_set(a.value, '$.seq', a.key)
FROM instance_action_logs l, json_each(l.body, '$.actions') a;
DROP TABLE instance_action_logs;
