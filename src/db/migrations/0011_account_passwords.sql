-- Passwords of accounts made through PurchaseNewMembership (UserName + Password), which may log in
-- with them as well as by emailed link. Only a memory-hard hash is kept (scrypt, src/auth/passwords.ts).
CREATE TABLE account_passwords (
  email text PRIMARY KEY,
  hash text NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
