-- Lockout: how long the last lock lasted, so the next one (after the failure counter has
-- started again) can last twice as long; 0 again after a successful login.
ALTER TABLE users ADD COLUMN last_lock_secs BIGINT NOT NULL DEFAULT 0;
-- Bumped by every password reset or change: a login (or an mfa_token) that proved the old
-- password cannot open a session once the stamp has moved on.
ALTER TABLE users ADD COLUMN security_stamp BIGINT NOT NULL DEFAULT 0;
