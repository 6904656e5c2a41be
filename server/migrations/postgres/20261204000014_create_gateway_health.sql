-- Federation (issue #17): each peer gateway's health, written by the replica that holds
-- its lease and read by every replica (REST, UI, metrics); and the leases themselves: one
-- replica at a time discovers and health-checks a gateway. Both go with their gateway.
CREATE TABLE gateway_health (
    gateway_id UUID PRIMARY KEY REFERENCES gateways (id) ON DELETE CASCADE,
    status     TEXT NOT NULL,
    last_seen  TIMESTAMPTZ,
    last_error TEXT,
    checked_at TIMESTAMPTZ,
    tools      BIGINT NOT NULL DEFAULT 0,
    prompts    BIGINT NOT NULL DEFAULT 0,
    resources  BIGINT NOT NULL DEFAULT 0
);

-- Taken or renewed by one conditional upsert: the row is the owner's while `expires_at`
-- is in the future (about three health-check intervals after its last renewal).
CREATE TABLE gateway_leases (
    gateway_id UUID PRIMARY KEY REFERENCES gateways (id) ON DELETE CASCADE,
    owner      TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
