-- Failed logins counted per (account, client) instead of per account and per address, so that wrong
-- passwords sent from one client slow down only that client: the account's owner, elsewhere, still
-- logs in. A row is claimed (its counter raised, its back-off set) in one statement before a password
-- is checked, so concurrent attempts cannot run more checks than the limit; a success deletes it.
-- `account` is the lower-cased user name as typed ('' for the per-address row that caps attempts
-- across accounts); `client` is a keyed hash of the client's address, never the address.
CREATE TABLE login_throttle (
    account       TEXT NOT NULL CHECK (length(account) <= 200),
    client        TEXT NOT NULL CHECK (client ~ '^[0-9a-f]{64}$'),
    failures      INTEGER NOT NULL CHECK (failures >= 0),
    blocked_until TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account, client)
);
CREATE INDEX login_throttle_updated ON login_throttle (updated_at);

DROP TABLE login_failures;
