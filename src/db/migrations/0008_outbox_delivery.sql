-- Delivery of the outbox (src/outbox/README.md): each group's row says how many of its events are
-- pending and when a worker may next claim it, so finding work reads a small index of groups with
-- work due, never the pending events themselves.
--   pending      pending events of the group (kept by the statements that change an event's state)
--   available_at by the service clock: the time of its first event (new group), the end of the
--                lease while a worker holds it, the end of the backoff after a failure, the moment
--                it was released otherwise
--   lease_owner  the worker holding it; a worker records an outcome only while this is still it
ALTER TABLE outbox_groups
  ADD COLUMN pending integer NOT NULL DEFAULT 0,
  ADD COLUMN available_at timestamptz NOT NULL DEFAULT now(),
  ADD COLUMN lease_owner text;
-- Every writer gives the time (its own clock); the default only filled the rows that existed.
ALTER TABLE outbox_groups ALTER COLUMN available_at DROP DEFAULT;

UPDATE outbox_groups g
SET pending = waiting.n, available_at = waiting.oldest
FROM (SELECT group_key, count(*) AS n, min(created_at) AS oldest FROM outbox WHERE state = 'pending' GROUP BY group_key) waiting
WHERE g.group_key = waiting.group_key;

-- Claiming: the groups with work, by when they are due.
CREATE INDEX outbox_groups_due_idx ON outbox_groups (available_at) WHERE pending > 0;
-- A claimed group's first pending events, in order.
CREATE INDEX outbox_pending_seq_idx ON outbox (group_key, seq) WHERE state = 'pending';
