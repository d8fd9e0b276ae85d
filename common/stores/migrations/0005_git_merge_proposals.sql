-- Merge proposals (common/git/service.py): the model's resolution of a conflicted
-- merge, per file, with its check results, waiting for the caller to accept it.
-- In PostgreSQL, not in the workspace, so that the worker (or Lambda instance)
-- that runs the accept need not be the one that made the proposal.

CREATE TABLE git_merge_proposals (
    id             uuid PRIMARY KEY,
    project_id     uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    owner_key_id   uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    -- The branch merged in, the project's branch it goes into, and the two commits
    -- the proposal was made from: an accept is refused once either branch moved.
    branch         text NOT NULL,
    target_branch  text NOT NULL,
    ours           text NOT NULL,
    theirs         text NOT NULL,
    conflicts      jsonb NOT NULL DEFAULT '[]'::jsonb,
    -- [{"path", "content", "checks", "ok"}] and the project's test results.
    files          jsonb NOT NULL,
    tests          jsonb NOT NULL DEFAULT '[]'::jsonb,
    ok             boolean NOT NULL,
    status         text NOT NULL DEFAULT 'proposed'
                   CHECK (status IN ('proposed', 'accepted', 'rejected', 'stale')),
    -- The merge commit an accepted proposal became.
    merge_commit   text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    decided_at     timestamptz
);
CREATE INDEX git_merge_proposals_project_idx ON git_merge_proposals (project_id, created_at DESC);
