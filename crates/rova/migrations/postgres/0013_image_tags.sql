-- An image's tags become rows of their own (Glance's image_tags): one per
-- image and tag (id `<image>/<tag>`), with the tag's place among the
-- image's. The tags an image's document listed are moved here, in their
-- order, and taken out of the document.
CREATE TABLE image_tags (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    image_id TEXT,
    tag TEXT,
    body JSON NOT NULL
);
CREATE INDEX image_tags_image_id ON image_tags (image_id);
CREATE INDEX image_tags_tag ON image_tags (tag);
INSERT INTO image_tags (id, gen, image_id, tag, body)
SELECT i.id || '/' || t.value, 1, i.id, t.value,
       json_build_object('image_id', i.id, 'tag', t.value, 'position', t.ord - 1)
FROM images i
CROSS JOIN LATERAL json_array_elements_text(coalesce(i.body->'tags', '[]'::json))
     WITH ORDINALITY AS t(value, ord)
ON CONFLICT (id) DO NOTHING;
-- Without JSONB (a document may hold a NUL character JSONB refuses): the
-- document rebuilt from its other members.
UPDATE images SET body = (
    SELECT json_object_agg(m.key, m.value)
    FROM json_each(images.body) AS m(key, value)
    WHERE m.key <> 'tags'
)
WHERE body->'tags' IS NOT NULL;
