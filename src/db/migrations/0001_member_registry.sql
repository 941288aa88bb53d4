-- The member registry: people, login keys, sessions, admin roles and the audit log.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE SEQUENCE member_number_seq START 1;

CREATE TABLE people (
  id                serial PRIMARY KEY,
  last_modified     timestamptz NOT NULL,
  member_number     integer UNIQUE,
  membership        text NOT NULL,
  legal_name        text NOT NULL,
  email             text,
  public_first_name text,
  public_last_name  text,
  city              text,
  state             text,
  country           text,
  paper_pubs        jsonb
);
CREATE INDEX people_email_idx ON people (lower(email));
CREATE INDEX people_last_modified_idx ON people (last_modified);
CREATE INDEX people_legal_name_trgm_idx ON people USING gin (lower(legal_name) gin_trgm_ops);
CREATE INDEX people_public_name_trgm_idx ON people
  USING gin (lower(coalesce(public_first_name, '') || ' ' || coalesce(public_last_name, '')) gin_trgm_ops);

-- Login keys, stored as SHA-256 hashes. Only the hash is kept, so a key cannot be re-sent:
-- each request mails a new key and earlier ones stay valid until they expire or are reset.
CREATE TABLE keys (
  key_hash  text PRIMARY KEY,
  email     text NOT NULL CHECK (email = lower(email)),
  created   timestamptz NOT NULL,
  expires   timestamptz NOT NULL
);
CREATE INDEX keys_email_idx ON keys (email);

-- Sessions: the cookie holds a random id; only its SHA-256 hash is stored.
CREATE TABLE sessions (
  id_hash   text PRIMARY KEY,
  email     text NOT NULL CHECK (email = lower(email)),
  created   timestamptz NOT NULL,
  expires   timestamptz NOT NULL
);
CREATE INDEX sessions_email_idx ON sessions (email);

CREATE TABLE admins (
  email     text PRIMARY KEY CHECK (email = lower(email)),
  roles     text[] NOT NULL
);

-- The audit log: one row for every change, written in the change's transaction.
CREATE TABLE log (
  id          bigserial PRIMARY KEY,
  "timestamp" timestamptz NOT NULL,
  author      text,
  subject     integer REFERENCES people (id),
  action      text NOT NULL,
  parameters  jsonb NOT NULL DEFAULT '{}',
  description text,
  client_ip   text,
  client_ua   text
);
CREATE INDEX log_subject_idx ON log (subject);
CREATE INDEX log_author_idx ON log (lower(author));
