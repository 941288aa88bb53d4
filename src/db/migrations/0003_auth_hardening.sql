-- Login hardening (issue #6).

-- Rate-limit counters shared by every server process: one fixed window per bucket. A bucket is a
-- hash of action, kind (ip or email) and subject, so a row's size does not depend on what a
-- stranger sends. Rows whose window has passed are swept hourly. UNLOGGED: counters need no WAL
-- and no flush at commit (every key request from one address updates the same row), and losing
-- them in a crash only restarts the windows.
CREATE UNLOGGED TABLE rate_limits (
  bucket       text PRIMARY KEY,
  window_start timestamptz NOT NULL,
  hits         integer NOT NULL
);
CREATE INDEX rate_limits_window_start_idx ON rate_limits (window_start);

-- A key asked for with `reset`: when it is used to log in, the address's other keys are deleted.
-- The reset waits for the login so that a stranger asking for a reset cannot cancel a member's links.
ALTER TABLE keys ADD COLUMN resets_others boolean NOT NULL DEFAULT false;

-- When an admin last logged in: the start-up link is printed only while no admin ever has.
ALTER TABLE admins ADD COLUMN last_login timestamptz;
