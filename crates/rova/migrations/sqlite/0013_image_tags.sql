-- An image's tags become rows of their own (Glance's image_tags): one per
-- image and tag (id `<image>/<tag>`), with the tag's place among the
-- image's. The tags an image's document listed are moved here, in their
-- order, and taken out of the document.
CREATE TABLE image_tags (
    id TEXT PRIMARY KEY NOT NULL,
    gen INTEGER NOT NULL DEFAULT 1,
    image_id TEXT,
    tag TEXT,
    body TEXT NOT NULL
);
CREATE INDEX image_tags_image_id ON image_tags (image_id);
CREATE INDEX image_tags_tag ON image_tags (tag);
INSERT OR IGNORE INTO image_tags (id, gen, image_id, tag, body)
SELECT i.id || '/' || t.value, 1, i.id, t.value,
       json_object('image_id', i.id, 'tag', t.value, 'position', t.key)
FROM images i, json_each(i.body, '$.tags') t;
UPDATE images SET body = json_remove(body, '$.tags');
