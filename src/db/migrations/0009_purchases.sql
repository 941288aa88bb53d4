-- Purchases (src/purchases/): one row per charge, written before the charge is sent (status
-- `charging`), so a crash between the charge and its settlement is found and reconciled; the
-- validated order is kept in `request` so that the same order can be settled later (at start, by
-- the reconcile job, or from a gateway webhook). `token` is the payer's single-use gateway token,
-- kept only until the charge is settled (the reconciler replays the charge with it and the same
-- idempotency key, which the gateway answers with the first outcome). An order not paid yet is
-- `open` (a cart, or an invoice): it is paid later with the key whose hash is `pay_key_hash`.
CREATE TABLE purchases (
  id bigserial PRIMARY KEY,
  kind text NOT NULL,
  status text NOT NULL CHECK (status IN ('open', 'charging', 'pending', 'succeeded', 'failed')),
  pay_key_hash text,
  -- Tries at paying it: each try is its own charge, with its own idempotency key (an open order
  -- whose card was declined can be paid again with another card).
  attempt integer NOT NULL DEFAULT 1,
  -- Random, made with the row: the charge's idempotency key at the gateway is built from it, so it
  -- is unique beyond this database (another installation, or a restored copy, on the same account).
  charge_key text NOT NULL,
  payer_email text NOT NULL,
  account text NOT NULL,
  gateway text NOT NULL,
  amount integer NOT NULL CHECK (amount >= 0),
  currency text NOT NULL,
  token text,
  charge_id text,
  method text,
  failure_code text,
  failure_reason text,
  request jsonb NOT NULL,
  result jsonb,
  author text,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX purchases_pay_key ON purchases (pay_key_hash) WHERE pay_key_hash IS NOT NULL;
CREATE UNIQUE INDEX purchases_gateway_charge ON purchases (gateway, charge_id) WHERE charge_id IS NOT NULL;
-- The reconciler's question: which charges were sent and never settled?
CREATE INDEX purchases_unsettled ON purchases (updated_at) WHERE status IN ('charging', 'pending');

-- kansa's payments table: one row per item of a purchase (a membership, an upgrade, a sponsorship,
-- a donation), as GET purchase/list shows them.
CREATE TABLE payments (
  id bigserial PRIMARY KEY,
  purchase_id bigint NOT NULL REFERENCES purchases,
  status text NOT NULL CHECK (status IN ('invoice', 'pending', 'succeeded', 'failed', 'refunded')),
  payment_email text NOT NULL,
  amount integer NOT NULL CHECK (amount >= 0),
  currency text NOT NULL,
  person_id integer REFERENCES people,
  person_name text,
  category text NOT NULL,
  type text,
  data jsonb,
  comments text,
  invoice text,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
CREATE INDEX payments_purchase ON payments (purchase_id);
CREATE INDEX payments_email ON payments (lower(payment_email));
CREATE INDEX payments_person ON payments (person_id) WHERE person_id IS NOT NULL;

-- Refunds of a purchase's charge, full or partial; their sum never exceeds the purchase's amount
-- (checked under the purchase's row lock). Written before the gateway is asked (status `refunding`).
CREATE TABLE refunds (
  id bigserial PRIMARY KEY,
  purchase_id bigint NOT NULL REFERENCES purchases,
  status text NOT NULL CHECK (status IN ('refunding', 'pending', 'succeeded', 'failed')),
  amount integer NOT NULL CHECK (amount > 0),
  currency text NOT NULL,
  refund_id text,
  reason text,
  author text,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
CREATE INDEX refunds_purchase ON refunds (purchase_id);

-- Idempotency-Key of POST purchase, purchase/other and PurchaseNewMembership: the first answer is
-- kept and given again for the same key and body. `purchase_id` ties a key to its charge, so a retry
-- whose first attempt never answered settles the same charge instead of making a second.
CREATE TABLE idempotency_keys (
  scope text NOT NULL,
  key text NOT NULL,
  request_hash text NOT NULL,
  purchase_id bigint REFERENCES purchases,
  status_code integer,
  response jsonb,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (scope, key)
);

-- Gateway webhook events already acted on: the same event delivered twice has no second effect.
CREATE TABLE gateway_events (
  gateway text NOT NULL,
  event_id text NOT NULL,
  received_at timestamptz NOT NULL,
  PRIMARY KEY (gateway, event_id)
);

-- The built-in test gateway's own ledger (src/payments/test-gateway.ts), as Stripe keeps its own:
-- a replayed charge with the same idempotency key finds the first one here.
CREATE TABLE test_gateway_charges (
  idempotency_key text PRIMARY KEY,
  charge_id text NOT NULL UNIQUE,
  account text NOT NULL,
  status text NOT NULL CHECK (status IN ('succeeded', 'pending', 'declined')),
  amount integer NOT NULL,
  currency text NOT NULL,
  refunded integer NOT NULL DEFAULT 0,
  decline_code text,
  created_at timestamptz NOT NULL
);
