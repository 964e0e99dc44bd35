-- One-time tokens mailed to users: email verification and password reset. Only the
-- SHA-256 of each token is kept; a token works once (used_at) and until expires_at.
CREATE TABLE account_tokens (
    hash       TEXT PRIMARY KEY,             -- SHA-256 hex of the mailed token
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,                -- 'verify_email' or 'password_reset'
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX account_tokens_user ON account_tokens(user_id);
