-- A server's instance actions become rows of their own (Nova's
-- instance_actions): one per action, keyed `<server>/<seq>` (seq: the
-- action's place among the server's, six digits), with the server, the
-- request id and the action as columns. The logs that listed a server's
-- actions in one document are split into these rows, in order, and go.
ALTER TABLE instance_actions RENAME TO instance_action_logs;
CREATE TABLE instance_actions (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    instance_uuid TEXT,
    request_id TEXT,
    action TEXT,
    body JSON NOT NULL
);
CREATE INDEX instance_actions_instance_uuid ON instance_actions (instance_uuid);
-- Without JSONB (a document may hold a NUL character JSONB refuses): each
-- action's document rebuilt from its members with `seq` added.
INSERT INTO instance_actions (id, gen, instance_uuid, request_id, action, body)
SELECT l.id || '/' || lpad((a.ord - 1)::text, 6, '0'), 1, l.id,
       a.value->>'request_id', a.value->>'action',
       (SELECT json_object_agg(m.key, m.value)
          FROM (SELECT key, value FROM json_each(a.value) WHERE key <> 'seq'
                UNION ALL SELECT 'seq', to_json(a.ord - 1)) AS m(key, value))
FROM instance_action_logs l
CROSS JOIN LATERAL json_array_elements(coalesce(l.body->'actions', '[]'::json))
     WITH ORDINALITY AS a(value, ord)
ON CONFLICT (id) DO NOTHING;
DROP TABLE instance_action_logs;
