-- Browser sign-in: authorization code with PKCE, the hosted login session, consent.
-- Same rules as the core schema: TEXT ids, BIGINT unix seconds, BIGINT 0/1 flags.

-- Space-separated URIs, compared exactly (loopback ports aside, RFC 8252 §7.3).
ALTER TABLE clients ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '';
-- First-party clients skip the consent page.
ALTER TABLE clients ADD COLUMN first_party BIGINT NOT NULL DEFAULT 0;

-- The browser's login session behind the cookie. A row exists from the first visit (it
-- carries the CSRF token); user_id is set at sign-in, when the row is replaced by a new one.
CREATE TABLE browser_sessions (
    id         TEXT PRIMARY KEY,             -- SHA-256 hex of the cookie value
    csrf_token TEXT NOT NULL,
    user_id    TEXT REFERENCES users(id) ON DELETE CASCADE,
    auth_time  BIGINT,
    amr        TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX browser_sessions_expires ON browser_sessions(expires_at);

-- An authorization request between the redirect to latchkey and the code: what the client
-- asked for, and how far the user got (login, second_factor, consent).
CREATE TABLE authorize_requests (
    id              TEXT PRIMARY KEY,        -- random; the pages' hidden `tx` input
    browser_session TEXT NOT NULL,           -- browser_sessions.id; moved along at sign-in
    client_id       TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    redirect_uri    TEXT NOT NULL,
    scope           TEXT NOT NULL,
    scope_explicit  BIGINT NOT NULL,
    state           TEXT,
    nonce           TEXT,
    code_challenge  TEXT NOT NULL,           -- S256 only
    prompt_consent  BIGINT NOT NULL,         -- prompt=consent: ask even if remembered
    stage           TEXT NOT NULL,
    user_id         TEXT REFERENCES users(id) ON DELETE CASCADE,
    mfa_challenge   TEXT,                    -- SHA-256 hex of the MFA challenge's token
    login_hint      TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX authorize_requests_expires ON authorize_requests(expires_at);

CREATE TABLE authorization_codes (
    hash           TEXT PRIMARY KEY,         -- SHA-256 hex of the code
    client_id      TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    redirect_uri   TEXT NOT NULL,
    scope          TEXT NOT NULL,
    nonce          TEXT,
    code_challenge TEXT NOT NULL,
    amr            TEXT NOT NULL,
    auth_time      BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT,
    session_id     TEXT                      -- the token session it started, ended on reuse
);
CREATE INDEX authorization_codes_expires ON authorization_codes(expires_at);

-- What a user allowed a client, remembered so the consent page is asked once.
CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
