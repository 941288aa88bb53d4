-- Each consumer has its own copy of the events it takes (src/outbox/README.md, "Consumers"): an
-- event is written once per consumer that takes its type, in that consumer's own group, so one
-- slow or failing connector never holds back another, and each keeps its own state per event.
-- An event that no consumer takes is written once, already delivered (consumer '').

-- The consumers of the outbox, as the last process started registered them (name, the types it takes).
CREATE TABLE outbox_consumers (
  name text PRIMARY KEY CHECK (name <> ''),
  types text[] NOT NULL
);
-- Until this migration the mail connector was the only consumer.
INSERT INTO outbox_consumers (name, types) VALUES ('mail', '{login_link.requested,mail.requested}');

ALTER TABLE outbox_groups ADD COLUMN consumer text NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN consumer text NOT NULL DEFAULT '';

-- The mail groups (one per address) become the mail consumer's.
UPDATE outbox_groups SET consumer = 'mail' WHERE group_key LIKE 'email:%';
UPDATE outbox SET consumer = 'mail' WHERE group_key LIKE 'email:%';
-- The events of other groups had no consumer: they count as delivered, as the worker would have made them.
UPDATE outbox SET state = 'delivered', delivered_at = created_at WHERE consumer = '' AND state = 'pending';
UPDATE outbox_groups SET pending = 0, lease_owner = NULL WHERE consumer = '';

ALTER TABLE outbox_groups DROP CONSTRAINT outbox_groups_pkey;
ALTER TABLE outbox_groups ADD PRIMARY KEY (consumer, group_key);
ALTER TABLE outbox DROP CONSTRAINT outbox_group_key_seq_key;
-- Group first: it also finds one member's events whatever their consumer (the admin API's `group`).
ALTER TABLE outbox ADD CONSTRAINT outbox_group_consumer_seq_key UNIQUE (group_key, consumer, seq);

DROP INDEX outbox_pending_seq_idx;
CREATE INDEX outbox_pending_seq_idx ON outbox (consumer, group_key, seq) WHERE state = 'pending';
