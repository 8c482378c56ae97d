-- Roles (webitel): a name, an integer code (root=2, admin=1, user=0 in Webitel) and an ACL,
-- a JSON object mapping a resource to its list of permissions ("*", "r", "w", "u", "d", ...).
CREATE TABLE roles (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 150),
    code       INTEGER NOT NULL,
    acl        TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

-- A principal has at most one role; a role in use cannot be removed.
ALTER TABLE principals ADD COLUMN role_id INTEGER REFERENCES roles (id) ON DELETE RESTRICT;
CREATE INDEX principals_role_idx ON principals (role_id) WHERE role_id IS NOT NULL;

-- HMAC keys for the dialects that issue JWTs, shared by every replica through the database.
-- The newest signs; all verify, so tokens signed before a rotation keep working.
CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY CHECK (length(kid) BETWEEN 1 AND 64),
    secret     BLOB NOT NULL CHECK (length(secret) >= 32),
    created_at INTEGER NOT NULL
) STRICT;
