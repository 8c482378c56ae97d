-- tokenauth schema, SQLite. Never edit a released migration: add a new numbered file.
-- Times are INTEGER microseconds since the Unix epoch, UTC, so they compare and sort exactly
-- as Postgres timestamptz does. Ids of tokens are lowercase hyphenated UUID text.

CREATE TABLE principals (
    -- AUTOINCREMENT: an id is never reused after a removal, as with a Postgres identity.
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT NOT NULL CHECK (kind IN ('user', 'reseller')),
    name          TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 150),
    password_hash TEXT NOT NULL,
    enabled       INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    created_at    INTEGER NOT NULL,
    last_login_at INTEGER,
    UNIQUE (kind, name)
) STRICT;

CREATE TABLE tokens (
    id           TEXT PRIMARY KEY CHECK (length(id) = 36),
    principal_id INTEGER NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    dialect      TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('session', 'static')),
    digest       BLOB NOT NULL CHECK (length(digest) = 32),
    note         TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    enabled      INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    version      INTEGER NOT NULL,
    revoked_at   INTEGER
) STRICT;

CREATE UNIQUE INDEX tokens_digest_key ON tokens (digest);
CREATE INDEX tokens_principal_dialect_idx ON tokens (principal_id, dialect);
CREATE INDEX tokens_revoked_at_idx ON tokens (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX tokens_expires_at_idx ON tokens (expires_at) WHERE expires_at IS NOT NULL;
