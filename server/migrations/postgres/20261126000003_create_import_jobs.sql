-- Import jobs: durable, so any process (or replica) can answer for them and run them.
-- The uploaded file and the sealed source secret are cleared once the job ends.
CREATE TABLE import_jobs (
    id               UUID PRIMARY KEY NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    created_by       TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ,
    heartbeat_at     TIMESTAMPTZ,
    runner           TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    options          JSONB NOT NULL DEFAULT '{}',
    file_name        TEXT,
    file_sha256      TEXT NOT NULL,
    file_size        BIGINT NOT NULL,
    payload          BYTEA,
    sealed_source_secret TEXT,
    processed        BIGINT NOT NULL DEFAULT 0,
    total            BIGINT NOT NULL DEFAULT 0,
    counts           JSONB NOT NULL DEFAULT '{}',
    report           JSONB,
    errors           JSONB NOT NULL DEFAULT '[]'
);
CREATE INDEX import_jobs_queue ON import_jobs (status, created_at);
CREATE INDEX import_jobs_created ON import_jobs (created_at);
