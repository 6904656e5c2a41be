-- One-off rewrites of stored records that SQL cannot do (they need the encryption key,
-- which never reaches the database), done in Rust when the store is opened: each is
-- recorded here under its name with the state it was done for (for `sealed_credentials`,
-- the fingerprint of the sensitive-header rules), and runs again only when that changes.
CREATE TABLE store_upgrades (
    name    TEXT PRIMARY KEY NOT NULL,
    state   TEXT NOT NULL,
    done_at TIMESTAMPTZ NOT NULL
);
