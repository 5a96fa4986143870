-- image_members: the projects a shared image is offered to (Glance's
-- image sharing), one row per image and project (id `<image>/<project>`),
-- with the status the project gave the offer.
CREATE TABLE image_members (
    id TEXT PRIMARY KEY NOT NULL,
    gen INTEGER NOT NULL DEFAULT 1,
    image_id TEXT,
    member_id TEXT,
    status TEXT,
    body TEXT NOT NULL
);
CREATE INDEX image_members_image_id ON image_members (image_id);
CREATE INDEX image_members_member_id ON image_members (member_id);
