-- Role permissions, as scopes: a scope listed here is restricted to users holding one of
-- the roles listed with it; scopes not listed are open to every user.
CREATE TABLE role_scopes (
    role  TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    PRIMARY KEY (role, scope)
);
INSERT INTO role_scopes (role, scope) VALUES ('admin', 'admin');

-- The admin audit search filters by event type.
CREATE INDEX audit_events_event ON audit_events(event);
