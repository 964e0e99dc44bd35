-- A client's own (client-credentials) access tokens issued before this instant are no
-- longer active: set when its secret is rotated, so a leaked secret's tokens die with it.
ALTER TABLE clients ADD COLUMN tokens_valid_after BIGINT NOT NULL DEFAULT 0;
