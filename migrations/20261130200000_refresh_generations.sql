-- A session keeps its refresh token's state, so a rotation rewrites this one row and
-- stores nothing per token (`crypto::refresh`): the current generation, the hashes of the
-- current and the previous token (the previous one serves a retry within
-- --refresh-reuse-grace), the scope and idle expiry the current token carries, and when it
-- was rotated. Tokens issued before stay in refresh_tokens and count as generation 0 of
-- their session until they expire.
ALTER TABLE sessions ADD COLUMN refresh_generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN refresh_hash TEXT;
ALTER TABLE sessions ADD COLUMN refresh_previous_hash TEXT;
ALTER TABLE sessions ADD COLUMN refresh_scope TEXT;
ALTER TABLE sessions ADD COLUMN refresh_expires_at BIGINT;
ALTER TABLE sessions ADD COLUMN refresh_rotated_at BIGINT;
