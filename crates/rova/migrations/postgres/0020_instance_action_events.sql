-- An instance action's events become rows of their own (Nova's
-- instance_actions_events): one per event, keyed `<action>/<nn>` (the
-- action row's key and the event's place among its action's, two
-- digits), with the action's row, the server and the event's name as
-- columns. The events an action's document listed are moved here, in
-- their order, and taken out of the document.
CREATE TABLE instance_action_events (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    action_id TEXT,
    instance_uuid TEXT,
    event TEXT,
    body JSON NOT NULL
);
CREATE INDEX instance_action_events_action_id ON instance_action_events (action_id);
CREATE INDEX instance_action_events_instance_uuid ON instance_action_events (instance_uuid);
-- Without JSONB (a document may hold a NUL character JSONB refuses): each
-- event's document rebuilt from its members with its action, server and
-- place added.
INSERT INTO instance_action_events (id, gen, action_id, instance_uuid, event, body)
SELECT a.id || '/' || lpad((e.ord - 1)::text, greatest(2, length((e.ord - 1)::text)), '0'),
       1, a.id, a.instance_uuid, e.value->>'event',
       (SELECT json_object_agg(m.key, m.value)
          FROM (SELECT key, value FROM json_each(e.value)
                 WHERE key NOT IN ('action_id', 'instance_uuid', 'position')
                UNION ALL SELECT 'action_id', to_json(a.id)
                UNION ALL SELECT 'instance_uuid', to_json(a.instance_uuid)
                UNION ALL SELECT 'position', to_json(e.ord - 1)) AS m(key, value))
FROM instance_actions a
CROSS JOIN LATERAL json_array_elements(
         CASE WHEN json_typeof(a.body->'events') = 'array' THEN a.body->'events'
              ELSE '[]'::json END)
     WITH ORDINALITY AS e(value, ord)
WHERE json_typeof(e.value) = 'object'
ON CONFLICT (id) DO NOTHING;
-- The action's document rebuilt from its other members.
UPDATE instance_actions SET body = (
    SELECT json_object_agg(m.key, m.value)
    FROM json_each(instance_actions.body) AS m(key, value)
    WHERE m.key <> 'events'
)
WHERE body->'events' IS NOT NULL;
