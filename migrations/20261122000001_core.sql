-- One schema for SQLite and PostgreSQL: TEXT ids, BIGINT unix seconds, BIGINT 0/1 flags
-- (sqlx's Any driver cannot decode SQLite booleans).

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    username        TEXT NOT NULL UNIQUE,   -- normalised to lower case
    email           TEXT NOT NULL UNIQUE,   -- normalised to lower case
    password_hash   TEXT NOT NULL,          -- argon2id PHC string
    email_verified  BIGINT NOT NULL DEFAULT 0,
    status          TEXT NOT NULL DEFAULT 'active',
    failed_attempts BIGINT NOT NULL DEFAULT 0,
    locked_until    BIGINT,
    last_login_at   BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE roles (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL
);
INSERT INTO roles (name, description) VALUES
    ('admin', 'Full access to the admin API'),
    ('user', 'An ordinary account');

CREATE TABLE user_roles (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role    TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role)
);

CREATE TABLE clients (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash TEXT,                        -- SHA-256 hex of a 256-bit secret; NULL = public
    grants      TEXT NOT NULL,               -- space-separated grant types
    scopes      TEXT NOT NULL,               -- space-separated scopes the client may ask for
    audiences   TEXT NOT NULL,               -- space-separated `aud` values
    require_mfa BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- A session is one login: the family of refresh tokens rotated from it and the access
-- tokens issued along the way (they carry its id as `sid`).
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id    TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    scope        TEXT NOT NULL,
    amr          TEXT NOT NULL,
    auth_time    BIGINT NOT NULL,
    ip           TEXT,
    user_agent   TEXT,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,            -- absolute lifetime of the family
    revoked_at   BIGINT
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE refresh_tokens (
    hash       TEXT PRIMARY KEY,             -- SHA-256 hex of the opaque token
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,              -- idle lifetime
    used_at    BIGINT                        -- set once, when rotated
);
CREATE INDEX refresh_tokens_session ON refresh_tokens(session_id);

CREATE TABLE revoked_access_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL               -- rows can go once the token has expired
);

-- Key material lives in the keys dir; this is the state replicas agree on.
CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY,
    alg        TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retire_at  BIGINT                        -- NULL while signing; set when superseded
);

CREATE TABLE audit_events (
    id         TEXT PRIMARY KEY,             -- UUIDv7: sorts by time
    at         BIGINT NOT NULL,
    event      TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    actor_id   TEXT,
    user_id    TEXT,
    client_id  TEXT,
    ip         TEXT,
    user_agent TEXT,
    detail     TEXT
);
CREATE INDEX audit_events_at ON audit_events(at);
CREATE INDEX audit_events_user ON audit_events(user_id);
CREATE INDEX audit_events_client ON audit_events(client_id);
