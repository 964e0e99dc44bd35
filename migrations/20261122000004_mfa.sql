-- TOTP second factor (RFC 6238), recovery codes, and the challenges of the MFA grant.
-- Same rules as the core schema: TEXT ids, BIGINT unix seconds, BIGINT 0/1 flags.

-- One authenticator per user. Pending (confirmed = 0) until a first code proves the app
-- was set up; the secret is ChaCha20-Poly1305 ciphertext, never the secret itself.
CREATE TABLE totp_credentials (
    user_id      TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret       TEXT NOT NULL,              -- base64(nonce || ciphertext), bound to user_id
    confirmed    BIGINT NOT NULL DEFAULT 0,
    confirmed_at BIGINT,
    last_step    BIGINT,                     -- last accepted time step: codes are good once
    created_at   BIGINT NOT NULL
);

CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    hash       TEXT NOT NULL,                -- SHA-256 hex of an 80-bit code
    created_at BIGINT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (user_id, hash)
);

-- The step between a correct password and the second factor (`mfa_token`).
CREATE TABLE mfa_challenges (
    hash            TEXT PRIMARY KEY,        -- SHA-256 hex of the mfa_token
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id       TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    scope           TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,  -- taken before each code is checked
    used_at         BIGINT
);
CREATE INDEX mfa_challenges_expires ON mfa_challenges(expires_at);
