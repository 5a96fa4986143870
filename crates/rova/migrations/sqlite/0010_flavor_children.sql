-- A flavor's extra specs and the projects granted a private flavor become
-- rows of their own (Nova's flavor_extra_specs and flavor_projects): one
-- row per flavor and key (id `<flavor>/<key>`), and one per flavor and
-- project (id `<flavor>/<project>`, with the grant's place in the order
-- they were made). What a flavor's document listed is moved here and
-- taken out of the document.
CREATE TABLE flavor_extra_specs (
    id TEXT PRIMARY KEY NOT NULL,
    gen INTEGER NOT NULL DEFAULT 1,
    flavor_id TEXT,
    spec_key TEXT,
    body TEXT NOT NULL
);
CREATE INDEX flavor_extra_specs_flavor_id ON flavor_extra_specs (flavor_id);
CREATE TABLE flavor_projects (
    id TEXT PRIMARY KEY NOT NULL,
    gen INTEGER NOT NULL DEFAULT 1,
    flavor_id TEXT,
    project_id TEXT,
    body TEXT NOT NULL
);
CREATE INDEX flavor_projects_flavor_id ON flavor_projects (flavor_id);
CREATE INDEX flavor_projects_project_id ON flavor_projects (project_id);
INSERT INTO flavor_extra_specs (id, gen, flavor_id, spec_key, body)
SELECT f.id || '/' || s.key, 1, f.id, s.key,
       json_object('flavor_id', f.id, 'key', s.key, 'value', CAST(s.value AS TEXT))
FROM flavors f, json_each(f.body, '$.extra_specs') s;
INSERT INTO flavor_projects (id, gen, flavor_id, project_id, body)
SELECT f.id || '/' || p.value, 1, f.id, p.value,
       json_object('flavor_id', f.id, 'project_id', p.value, 'position', p.key)
FROM flavors f, json_each(f.body, '$.projects') p;
UPDATE flavors SET body = json_remove(body, '$.extra_specs', '$.projects');
CREATE INDEX flavors_name ON flavors (name);
