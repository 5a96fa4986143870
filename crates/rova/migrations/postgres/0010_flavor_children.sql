-- A flavor's extra specs and the projects granted a private flavor become
-- rows of their own (Nova's flavor_extra_specs and flavor_projects): one
-- row per flavor and key (id `<flavor>/<key>`), and one per flavor and
-- project (id `<flavor>/<project>`, with the grant's place in the order
-- they were made). What a flavor's document listed is moved here and
-- taken out of the document.
CREATE TABLE flavor_extra_specs (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    flavor_id TEXT,
    spec_key TEXT,
    body JSON NOT NULL
);
CREATE INDEX flavor_extra_specs_flavor_id ON flavor_extra_specs (flavor_id);
CREATE TABLE flavor_projects (
    id TEXT PRIMARY KEY NOT NULL,
    gen BIGINT NOT NULL DEFAULT 1,
    flavor_id TEXT,
    project_id TEXT,
    body JSON NOT NULL
);
CREATE INDEX flavor_projects_flavor_id ON flavor_projects (flavor_id);
CREATE INDEX flavor_projects_project_id ON flavor_projects (project_id);
INSERT INTO flavor_extra_specs (id, gen, flavor_id, spec_key, body)
SELECT f.id || '/' || s.key, 1, f.id, s.key,
       json_build_object('flavor_id', f.id, 'key', s.key, 'value', s.value)
FROM flavors f
CROSS JOIN LATERAL json_each_text(coalesce(f.body->'extra_specs', '{}'::json)) AS s(key, value);
INSERT INTO flavor_projects (id, gen, flavor_id, project_id, body)
SELECT f.id || '/' || p.value, 1, f.id, p.value,
       json_build_object('flavor_id', f.id, 'project_id', p.value, 'position', p.ord - 1)
FROM flavors f
CROSS JOIN LATERAL json_array_elements_text(coalesce(f.body->'projects', '[]'::json))
     WITH ORDINALITY AS p(value, ord);
-- Without JSONB (a document may hold a NUL character JSONB refuses): the
-- document rebuilt from its other members.
UPDATE flavors SET body = (
    SELECT json_object_agg(m.key, m.value)
    FROM json_each(flavors.body) AS m(key, value)
    WHERE m.key NOT IN ('extra_specs', 'projects')
)
WHERE body->'extra_specs' IS NOT NULL OR body->'projects' IS NOT NULL;
CREATE INDEX flavors_name ON flavors (name);
