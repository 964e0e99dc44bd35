-- One-time tokens mailed to users: email verification and password reset. Only the
-- SHA-256 of each token is kept; a token works once (used_at) and until expires_at.
-- A reset requested for an address nobody has still stores a row, with no user, so that
-- known and unknown addresses cost the same; such a row can never be spent.
CREATE TABLE account_tokens (
    hash       TEXT PRIMARY KEY,             -- SHA-256 hex of the mailed token
    user_id    TEXT REFERENCES users(id) ON DELETE CASCADE,   -- NULL: no such address
    kind       TEXT NOT NULL,                -- 'verify_email' or 'password_reset'
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX account_tokens_user ON account_tokens(user_id);
