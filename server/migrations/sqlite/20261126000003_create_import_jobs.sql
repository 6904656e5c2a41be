-- Import jobs: durable, so any process (or replica) can answer for them and run them.
-- The uploaded file and the sealed source secret are cleared once the job ends.
CREATE TABLE import_jobs (
    id               BLOB PRIMARY KEY NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    created_by       TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    heartbeat_at     TEXT,
    runner           TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    options          TEXT NOT NULL DEFAULT '{}',
    file_name        TEXT,
    file_sha256      TEXT NOT NULL,
    file_size        BIGINT NOT NULL,
    payload          BLOB,
    sealed_source_secret TEXT,
    processed        BIGINT NOT NULL DEFAULT 0,
    total            BIGINT NOT NULL DEFAULT 0,
    counts           TEXT NOT NULL DEFAULT '{}',
    report           TEXT,
    errors           TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX import_jobs_queue ON import_jobs (status, created_at);
CREATE INDEX import_jobs_created ON import_jobs (created_at);
