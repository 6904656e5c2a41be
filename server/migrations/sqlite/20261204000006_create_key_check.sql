-- The fingerprint of the key the stored credentials are encrypted with (one-way, never
-- the key), so that a start with another AUTH_ENCRYPTION_SECRET is refused instead of
-- mixing keys in one database. At most one row.
CREATE TABLE key_check (
    id          INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    fingerprint TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
