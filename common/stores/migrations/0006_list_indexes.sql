-- The list endpoints (GET /api/jobs, GET /api/projects) page a key's rows newest
-- first with a (created_at, id) cursor: one index each on exactly that order, so a
-- page is an index range scan however many rows the key has. They replace the
-- single-column (projects) and (key_id, created_at) (jobs) indexes of 0001, which
-- they cover.

CREATE INDEX jobs_key_created_idx ON jobs (key_id, created_at DESC, id DESC);
DROP INDEX IF EXISTS jobs_key_idx;

CREATE INDEX projects_owner_created_idx ON projects (owner_key_id, created_at DESC, id DESC);
DROP INDEX IF EXISTS projects_owner_idx;
