-- Rate limits as GCRA state ("theoretical arrival time"), in the database so that replicas
-- sharing it share the limits too.
CREATE TABLE rate_limits (
    key     TEXT PRIMARY KEY,
    tat_ms  BIGINT NOT NULL,
    allowed BIGINT NOT NULL
);
