-- Jobs: what a client sees while one runs (step and last message beside the
-- percent in `progress`), a cancel asked for while it runs, the running worker's
-- lease (it renews it while alive; expired = the worker died) and when the job was
-- last put on the queue (the sweeper re-sends a job whose message was lost).

ALTER TABLE jobs
    ADD COLUMN progress_step        text NOT NULL DEFAULT '',
    ADD COLUMN progress_message     text NOT NULL DEFAULT '',
    ADD COLUMN cancel_requested_at  timestamptz,
    ADD COLUMN lease_until          timestamptz,
    ADD COLUMN enqueued_at          timestamptz;

-- The sweeper reads only unfinished jobs: a small partial index however long the history.
CREATE INDEX jobs_unfinished_idx ON jobs (status, enqueued_at)
    WHERE status IN ('queued', 'running');
