-- Publish before sign: a key is in the JWKS from created_at but signs only from signs_from,
-- once every cached copy of a JWKS without it has expired. generation orders the keys; it is
-- UNIQUE so that two replicas rotating at once (or both making the first key) conflict
-- instead of both winning.
ALTER TABLE signing_keys ADD COLUMN signs_from BIGINT;
ALTER TABLE signing_keys ADD COLUMN generation BIGINT;
UPDATE signing_keys SET signs_from = created_at;
UPDATE signing_keys SET generation = (
    SELECT COUNT(*) FROM signing_keys AS earlier
    WHERE earlier.created_at < signing_keys.created_at
       OR (earlier.created_at = signing_keys.created_at AND earlier.kid <= signing_keys.kid)
);
CREATE UNIQUE INDEX signing_keys_generation ON signing_keys (generation);
