-- A server's tags become rows of their own (Nova's tags table): one per
-- server and tag (id `<server>/<tag>`), with the tag's place among the
-- server's. The tags a server's document listed are moved here, in their
-- order, and taken out of every document.
CREATE TABLE instance_tags (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    instance_uuid TEXT,
    tag TEXT,
    body JSON NOT NULL
);
CREATE INDEX instance_tags_instance_uuid ON instance_tags (instance_uuid);
CREATE INDEX instance_tags_tag ON instance_tags (tag);
INSERT INTO instance_tags (id, gen, instance_uuid, tag, body)
SELECT i.id || '/' || t.value, 1, i.id, t.value,
       json_build_object('instance_uuid', i.id, 'tag', t.value, 'position', t.ord - 1)
FROM instances i
CROSS JOIN LATERAL json_array_elements_text(coalesce(i.body->'tags', '[]'::json))
     WITH ORDINALITY AS t(value, ord)
ON CONFLICT (id) DO NOTHING;
-- Without JSONB (a document may hold a NUL character JSONB refuses): the
-- document rebuilt from its other members.
UPDATE instances SET body = (
    SELECT json_object_agg(m.key, m.value)
    FROM json_each(instances.body) AS m(key, value)
    WHERE m.key <> 'tags'
)
WHERE body->'tags' IS NOT NULL;
