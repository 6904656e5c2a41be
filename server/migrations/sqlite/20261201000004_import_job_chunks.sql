-- A job's uploaded file, in chunks of 1 MiB (one row each), so neither the upload nor the
-- worker ever holds the whole file in memory. New jobs leave import_jobs.payload NULL;
-- jobs queued before this migration still carry their file there. Deleted when the job ends.
CREATE TABLE import_job_chunks (
    job_id BLOB NOT NULL REFERENCES import_jobs (id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    data   BLOB NOT NULL,
    PRIMARY KEY (job_id, seq)
);
