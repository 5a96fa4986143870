-- Columns the instance queries run on, so that lists, usage and the
-- restart read them without parsing the documents: the creation time in
-- nanoseconds (the list order; the text's fractional digits vary, so it
-- does not sort as the times do), the process running the server's
-- operation, and the flavor's resources with the image (an empty image
-- means volume-backed) and its ports (ids separated by spaces). The store fills them from each document after
-- this migration (`rekey`).
ALTER TABLE instances ADD COLUMN created_ns INTEGER;
ALTER TABLE instances ADD COLUMN op_owner TEXT;
ALTER TABLE instances ADD COLUMN image_ref TEXT;
ALTER TABLE instances ADD COLUMN vcpus INTEGER;
ALTER TABLE instances ADD COLUMN memory_mb INTEGER;
ALTER TABLE instances ADD COLUMN root_gb INTEGER;
ALTER TABLE instances ADD COLUMN ephemeral_gb INTEGER;
ALTER TABLE instances ADD COLUMN vif_ports TEXT;
ALTER TABLE instances ADD COLUMN swap_mb INTEGER;
CREATE INDEX instances_list_order ON instances (created_ns, instance_id);
CREATE INDEX instances_project_list_order ON instances (project_id, created_ns, instance_id);
