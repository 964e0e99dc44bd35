-- The user's security stamp at sign-in: a password change or reset since then ends the
-- browser session's single sign-on, as it ends token sessions.
ALTER TABLE browser_sessions ADD COLUMN security_stamp BIGINT;
