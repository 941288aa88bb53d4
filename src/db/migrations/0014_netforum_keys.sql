-- netFORUM's keys for a Roster address (src/events/connectors/netforum/README.md): the donor's
-- customer key and the pledge the write methods name (their PledgeID), found by DonorLookup on the
-- first event that needs them, or set by member_admin, and kept from then on.
CREATE TABLE netforum_keys (
  -- The address as Roster stores keys: trimmed and lower-cased.
  email text PRIMARY KEY,
  -- The person with that address when the keys were found (person events look them up by it, so
  -- a changed address keeps its donor).
  person_id integer REFERENCES people ON DELETE SET NULL,
  cst_key text NOT NULL,
  pledge_id text NOT NULL,
  -- 'lookup': DonorLookup by the address; 'admin': set through PUT /api/crm/netforum/keys.
  source text NOT NULL CHECK (source IN ('lookup', 'admin')),
  updated_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX netforum_keys_person ON netforum_keys (person_id) WHERE person_id IS NOT NULL;
