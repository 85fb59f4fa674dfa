-- Dashboard accounts: argon2id hashes; `admin` may do everything, `researcher` reads and exports.
CREATE TABLE admins (
    id              BIGSERIAL PRIMARY KEY,
    username        TEXT NOT NULL CHECK (username ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    password_hash   TEXT NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    role            TEXT NOT NULL CHECK (role IN ('admin', 'researcher')),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX admins_username ON admins (lower(username));

-- Logged-in browsers. Only the SHA-256 of the cookie's token is stored, so a leaked table opens no session;
-- any web process can check a cookie, so the web tier stays stateless.
CREATE TABLE admin_sessions (
    token_hash  TEXT PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    admin_id    BIGINT NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    csrf_token  TEXT NOT NULL CHECK (csrf_token ~ '^[0-9a-f]{64}$'),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX admin_sessions_admin ON admin_sessions (admin_id);

-- Failed logins, counted per address and per user name over a sliding window by every web process.
CREATE TABLE login_failures (
    id          BIGSERIAL PRIMARY KEY,
    ip          TEXT NOT NULL,
    username    TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_ip ON login_failures (ip, at);
CREATE INDEX login_failures_username ON login_failures (lower(username), at);
