-- server_group_members: who belongs to which server group, one row per
-- member (id `<group>/<server>`), with the member's user so that the
-- `server_group_members` quota (members per group and user) is counted
-- from the rows in the transaction that adds one. The members a group's
-- document listed are moved here, in their order.
CREATE TABLE server_group_members (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    group_id TEXT,
    instance_uuid TEXT,
    group_user TEXT,
    body JSON NOT NULL
);
CREATE INDEX server_group_members_group_user ON server_group_members (group_user);
CREATE INDEX server_group_members_instance_uuid ON server_group_members (instance_uuid);
INSERT INTO server_group_members (id, gen, group_id, instance_uuid, group_user, body)
SELECT g.id || '/' || m.value, 1, g.id, m.value,
       g.id || '/' || coalesce(i.user_id, ''),
       json_build_object('group_id', g.id, 'instance_uuid', m.value,
                         'user_id', coalesce(i.user_id, ''),
                         'group_user', g.id || '/' || coalesce(i.user_id, ''),
                         'joined_at', g.body->>'created_at',
                         'position', m.ord - 1)
FROM server_groups g
CROSS JOIN LATERAL json_array_elements_text(coalesce(g.body->'members', '[]'::json))
     WITH ORDINALITY AS m(value, ord)
LEFT JOIN instances i ON i.id = m.value;
