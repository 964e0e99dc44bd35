-- The token a rotation handed out in place of this one: lets a client whose response was
-- lost retry within --refresh-reuse-grace, and only while that successor is unused.
ALTER TABLE refresh_tokens ADD COLUMN replaced_by TEXT;
