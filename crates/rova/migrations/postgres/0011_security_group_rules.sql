-- Security group rules become rows of their own (Neutron's
-- securitygrouprules): one per rule, keyed by the rule's id, with its
-- group, project and remote group as columns and its place among its
-- group's rules. The rules a group's document listed are moved here, in
-- their order, and taken out of the document.
CREATE TABLE security_group_rules (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    security_group_id TEXT,
    project_id TEXT,
    remote_group_id TEXT,
    body JSON NOT NULL
);
CREATE INDEX security_group_rules_group ON security_group_rules (security_group_id);
CREATE INDEX security_group_rules_remote ON security_group_rules (remote_group_id);
-- Without JSONB (a document may hold a NUL character JSONB refuses): each
-- rule's document rebuilt from its members, with its group and place.
INSERT INTO security_group_rules (id, gen, security_group_id, project_id, remote_group_id, body)
SELECT r.value->>'id', 1, g.id, r.value->>'project_id', r.value->>'remote_group_id',
       (SELECT json_object_agg(m.key, m.value)
        FROM (SELECT key, value FROM json_each(r.value)
              WHERE key NOT IN ('security_group_id', 'position')
              UNION ALL SELECT 'security_group_id', to_json(g.id)
              UNION ALL SELECT 'position', to_json(r.ord - 1)) AS m)
FROM security_groups g
CROSS JOIN LATERAL json_array_elements(coalesce(g.body->'rules', '[]'::json))
     WITH ORDINALITY AS r(value, ord);
UPDATE security_groups SET body = (
    SELECT json_object_agg(m.key, m.value)
    FROM json_each(security_groups.body) AS m(key, value)
    WHERE m.key <> 'rules'
)
WHERE body->'rules' IS NOT NULL;
