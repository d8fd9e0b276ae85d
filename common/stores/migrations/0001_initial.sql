-- The first schema: who calls (users, api_keys), what they keep (projects,
-- git_credentials), what runs (jobs) and what we measure (metrics).

CREATE TABLE users (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL,
    -- The visible part of the key, used to find the row; the secret part is only hashed.
    prefix        text NOT NULL UNIQUE,
    key_hash      bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

CREATE TABLE projects (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_key_id  uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    name          text NOT NULL,
    size_bytes    bigint NOT NULL DEFAULT 0,
    storage_uri   text,
    git_remote    text,
    sync_schedule text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_owner_idx ON projects (owner_key_id);

CREATE TABLE jobs (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    key_id        uuid REFERENCES api_keys (id) ON DELETE SET NULL,
    project_id    uuid REFERENCES projects (id) ON DELETE CASCADE,
    kind          text NOT NULL,
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    input         jsonb NOT NULL DEFAULT '{}'::jsonb,
    result        jsonb,
    error         jsonb,
    progress      real NOT NULL DEFAULT 0,
    attempts      integer NOT NULL DEFAULT 0,
    worker        text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    heartbeat_at  timestamptz,
    finished_at   timestamptz
);
CREATE INDEX jobs_status_created_idx ON jobs (status, created_at);
CREATE INDEX jobs_key_idx ON jobs (key_id, created_at DESC);

CREATE TABLE metrics (
    id      bigserial PRIMARY KEY,
    ts      timestamptz NOT NULL DEFAULT now(),
    name    text NOT NULL,
    value   double precision NOT NULL,
    labels  jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX metrics_name_ts_idx ON metrics (name, ts DESC);

CREATE TABLE git_credentials (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    key_id            uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    provider          text NOT NULL,
    host              text NOT NULL,
    token_ciphertext  bytea NOT NULL,
    hint              text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (key_id, host)
);
