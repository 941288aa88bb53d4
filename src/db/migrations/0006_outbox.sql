-- The transactional outbox (src/outbox/README.md): events written in the same transaction as the
-- change they describe, delivered later in order within their group.

-- One row per group: the last sequence number handed out. Taking the next number upserts this row,
-- which locks it until the transaction ends, so two transactions writing to one group take their
-- numbers in the order they commit (a bigserial is handed out before commit: id order is not commit order).
CREATE TABLE outbox_groups (
  group_key text PRIMARY KEY,
  last_seq bigint NOT NULL
);

CREATE TABLE outbox (
  id bigserial PRIMARY KEY,
  group_key text NOT NULL,
  seq bigint NOT NULL,
  type text NOT NULL,
  version integer NOT NULL,
  payload jsonb NOT NULL,
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead', 'discarded')),
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL,
  last_error text,
  created_at timestamptz NOT NULL,
  delivered_at timestamptz,
  UNIQUE (group_key, seq)
);

-- Listing by state (the admin API) and finding what is waiting.
CREATE INDEX outbox_state_idx ON outbox (state, id);
