-- Git sync (common/git, common/scheduler.py): the branch a project follows, when
-- its next scheduled sync is due, and a record of every sync run with its outcome.
-- projects.sync_schedule (0001) holds the interval as written ("15m", "1h", "1d").

ALTER TABLE projects ADD COLUMN git_branch text;
ALTER TABLE projects ADD COLUMN next_sync_at timestamptz;
CREATE INDEX projects_next_sync_idx ON projects (next_sync_at)
    WHERE sync_schedule IS NOT NULL AND git_remote IS NOT NULL;

CREATE TABLE git_sync_runs (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id   uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    trigger      text NOT NULL CHECK (trigger IN ('schedule', 'manual')),
    job_id       uuid REFERENCES jobs (id) ON DELETE SET NULL,
    status       text NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'skipped')),
    message      text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX git_sync_runs_project_idx ON git_sync_runs (project_id, created_at DESC);
