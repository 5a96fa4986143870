-- An instance action's events become rows of their own (Nova's
-- instance_actions_events): one per event, keyed `<action>/<nn>` (the
-- action row's key and the event's place among its action's, two
-- digits), with the action's row, the server and the event's name as
-- columns. The events an action's document listed are moved here, in
-- their order, and taken out of the document.
CREATE TABLE instance_action_events (
    id TEXT PRIMARY KEY NOT NULL,
    gen INTEGER NOT NULL DEFAULT 1,
    action_id TEXT,
    instance_uuid TEXT,
    event TEXT,
    body TEXT NOT NULL
);
CREATE INDEX instance_action_events_action_id ON instance_action_events (action_id);
CREATE INDEX instance_action_events_instance_uuid ON instance_action_events (instance_uuid);
INSERT OR IGNORE INTO instance_action_events (id, gen, action_id, instance_uuid, event, body)
SELECT a.id || '/' || printf('%02d', e.key), 1, a.id, a.instance_uuid,
       json_extract(e.value, '$.event'),
       json_set(e.value, '$.action_id', a.id, '$.instance_uuid', a.instance_uuid,
                '$.position', e.key)
FROM instance_actions a, json_each(a.body, '$.events') e
WHERE e.type = 'object';
UPDATE instance_actions SET body = json_remove(body, '$.events')
WHERE json_type(body, '$.events') IS NOT NULL;
