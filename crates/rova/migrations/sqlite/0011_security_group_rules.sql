-- Security group rules become rows of their own (Neutron's
-- securitygrouprules): one per rule, keyed by the rule's id, with its
-- group, project and remote group as columns and its place among its
-- group's rules. The rules a group's document listed are moved here, in
-- their order, and taken out of the document.
CREATE TABLE security_group_rules (
    id TEXT PRIMARY KEY NOT NULL,
    gen INTEGER NOT NULL DEFAULT 1,
    security_group_id TEXT,
    project_id TEXT,
    remote_group_id TEXT,
    body TEXT NOT NULL
);
CREATE INDEX security_group_rules_group ON security_group_rules (security_group_id);
CREATE INDEX security_group_rules_remote ON security_group_rules (remote_group_id);
INSERT INTO security_group_rules (id, gen, security_group_id, project_id, remote_group_id, body)
SELECT json_extract(r.value, '$.id'), 1, g.id, json_extract(r.value, '$.project_id'),
       json_extract(r.value, '$.remote_group_id'),
       json_set(r.value, '$.security_group_id', g.id, '$.position', r.key)
FROM security_groups g, json_each(g.body, '$.rules') r;
UPDATE security_groups SET body = json_remove(body, '$.rules');
