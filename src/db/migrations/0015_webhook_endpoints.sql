-- Webhook endpoints (src/events/connectors/webhooks/README.md): each is an outbox consumer of its
-- own, named webhook:<id>, so each has its own copy of the events it subscribes to, in order per
-- group, with its own tries and dead letters (its delivery log).
CREATE TABLE webhook_endpoints (
  id serial PRIMARY KEY,
  url text NOT NULL,
  description text NOT NULL DEFAULT '',
  types text[] NOT NULL,
  -- The Standard Webhooks signing secret (whsec_…): shown once when the endpoint is made. It has to
  -- be kept as it is to sign with it; it never appears in the API, the log or the audit log.
  secret text NOT NULL,
  created_at timestamptz NOT NULL,
  created_by text,
  updated_at timestamptz NOT NULL
);
