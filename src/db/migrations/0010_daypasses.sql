-- Day passes (src/purchases/daypasses.ts): one row per pass holder, kansa's `daypasses` table with
-- the days named by the organisation file's day keys (kansa had fixed day1..day5 columns). A pass
-- holder is a person of their own (membership NonMember: a day pass is not a membership), added
-- when the purchase that sold the pass settles; the row is written in that same unit of work, so
-- a person has at most one pass. `status` is the membership status the pass was priced at (kansa's
-- `status`: Adult, Youth, …); the person object shows it as `daypass`, and `days` as `daypass_days`.
CREATE TABLE daypasses (
  id bigserial PRIMARY KEY,
  person_id integer NOT NULL UNIQUE REFERENCES people,
  purchase_id bigint NOT NULL REFERENCES purchases,
  status text NOT NULL,
  days text[] NOT NULL CHECK (cardinality(days) > 0),
  created_at timestamptz NOT NULL
);
CREATE INDEX daypasses_purchase ON daypasses (purchase_id);

-- GET public/daypass-stats counts the passes of succeeded payments: its question, without reading
-- every other payment.
CREATE INDEX payments_daypass ON payments (status) WHERE category = 'daypass';
