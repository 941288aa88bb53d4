-- Payment methods kept at the gateway for later charges (src/purchases/payment-methods.ts): saved
-- when a buyer asks for auto-renewal (PurchaseNewMembership's AutoRenewal), charged again with
-- PurchaseNewMembership's StoredCreditCardId, and by the renewals of subscriptions later. Only the
-- gateway's ids are kept (a customer and its payment method), never a card number.
CREATE TABLE payment_methods (
  id bigserial PRIMARY KEY,
  -- Whose: the payer's address, as they logged in with it.
  email text NOT NULL,
  gateway text NOT NULL,
  account text NOT NULL,
  customer_id text NOT NULL,
  method_id text NOT NULL,
  -- What the payer sees: 'visa •••• 4242'.
  label text,
  -- Renewals may charge it without asking (the buyer chose AutoRenewal).
  auto_renew boolean NOT NULL DEFAULT false,
  -- The purchase that saved it.
  purchase_id bigint REFERENCES purchases,
  created_at timestamptz NOT NULL,
  UNIQUE (gateway, account, method_id)
);
CREATE INDEX payment_methods_email ON payment_methods (lower(email));

-- The test gateway keeps the customer and method it saved with a charge, so a replayed charge
-- answers with the same ones (src/payments/test-gateway.ts).
ALTER TABLE test_gateway_charges ADD COLUMN customer_id text, ADD COLUMN method_id text;
