-- A server's tags become rows of their own (Nova's tags table): one per
-- server and tag (id `<server>/<tag>`), with the tag's place among the
-- server's. The tags a server's document listed are moved here, in their
-- order, and taken out of every document.
CREATE TABLE instance_tags (
    id TEXT PRIMARY KEY NOT NULL,
    gen INTEGER NOT NULL DEFAULT 1,
    instance_uuid TEXT,
    tag TEXT,
    body TEXT NOT NULL
);
CREATE INDEX instance_tags_instance_uuid ON instance_tags (instance_uuid);
CREATE INDEX instance_tags_tag ON instance_tags (tag);
INSERT OR IGNORE INTO instance_tags (id, gen, instance_uuid, tag, body)
SELECT i.id || '/' || t.value, 1, i.id, t.value,
       json_object('instance_uuid', i.id, 'tag', t.value, 'position', t.key)
FROM instances i, json_each(i.body, '$.tags') t;
UPDATE instances SET body = json_remove(body, '$.tags')
WHERE json_type(body, '$.tags') IS NOT NULL;
