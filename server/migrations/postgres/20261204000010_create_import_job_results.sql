-- The per-entity results of a finished import job, in pages of up to 1,000 (one JSON
-- array per row), so a job's status carries counts only and results are read a page at a
-- time (GET /admin/import/status/{id}/results?offset=&limit=): neither the status nor a
-- page costs memory in proportion to the job. Jobs finished before this migration keep
-- their results in import_jobs.report.
CREATE TABLE import_job_results (
    job_id  UUID NOT NULL REFERENCES import_jobs (id) ON DELETE CASCADE,
    page    BIGINT NOT NULL,
    results TEXT NOT NULL,
    PRIMARY KEY (job_id, page)
);
