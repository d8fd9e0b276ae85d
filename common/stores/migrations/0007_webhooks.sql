-- Pull-request webhooks (common/review/webhooks.py): each project's webhook secret,
-- encrypted like git_credentials' tokens (the same keys, so it rotates with them),
-- and every delivery received, so that a host's retry or a replay queues nothing twice.

CREATE TABLE project_webhooks (
    project_id         uuid PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    owner_key_id       uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    -- The secret, never stored in clear: it is shown once, when made or rotated.
    secret_ciphertext  bytea NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    rotated_at         timestamptz
);

-- Keyed by project too: a host sends one event to each of its hooks under one id
-- (GitHub's X-GitHub-Delivery is per event), and two projects linked to one
-- repository must each get theirs.
CREATE TABLE webhook_deliveries (
    project_id   uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    provider     text NOT NULL CHECK (provider IN ('github', 'gitlab', 'bitbucket')),
    delivery_id  text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    job_id       uuid REFERENCES jobs (id) ON DELETE SET NULL,
    PRIMARY KEY (project_id, provider, delivery_id)
);
