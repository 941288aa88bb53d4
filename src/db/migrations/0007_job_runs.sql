-- One row per background job (src/jobs/): when it last started, by the service clock (its schedule
-- is shared by every server process), and who holds it now. A runner takes the row with one
-- conditional upsert, so at most one process runs a job at a time. `leased_until` is database time:
-- a runner that died stops holding the job once it passes.
CREATE TABLE job_runs (
  name text PRIMARY KEY,
  last_started_at timestamptz NOT NULL,
  leased_by text,
  leased_until timestamptz
);
