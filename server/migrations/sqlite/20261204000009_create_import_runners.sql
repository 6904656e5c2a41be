-- The gateway processes that run import jobs, each stamping its heartbeat every second
-- whether or not it runs a job. A running job whose runner has no fresh heartbeat here
-- (and whose own heartbeat is as old) was left by a process that is gone: only such a
-- job may be failed or cancelled by another process.
CREATE TABLE import_runners (
    id           TEXT PRIMARY KEY NOT NULL,
    started_at   TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL
);
