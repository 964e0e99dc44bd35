-- Readiness writes a row here and deletes it, to learn whether the database takes writes
-- (a full disk or a read-only file answers reads but not writes).
CREATE TABLE readiness_probe (
    id  TEXT PRIMARY KEY,
    pad TEXT NOT NULL
);
