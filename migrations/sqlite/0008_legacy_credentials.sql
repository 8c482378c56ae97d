-- Moving in from other systems (`tokenauth import`). A principal's password may be a legacy
-- hash kept exactly as imported, verified by its scheme and replaced with argon2id at the
-- first successful login; `imported_credential` fingerprints what was imported, so that running
-- the import again recognises the account after that rehash. A token row may hold a legacy
-- digest (django-rest-knox's), found by its `legacy_key`, verified by its scheme at the first
-- check and then rewritten to the SHA-256 digest; until then `digest` holds a placeholder no
-- presented token hashes to. A legacy JWT key (Webitel's) verifies old, kid-less tokens.
-- `imported_tokens` remembers every token id an import wrote, for good (the sweep deletes
-- revoked rows, not these), so a later run of the same import never brings back a token that
-- was revoked or logged out since.
ALTER TABLE principals ADD COLUMN password_scheme TEXT;
ALTER TABLE principals ADD COLUMN imported_credential TEXT;
ALTER TABLE tokens ADD COLUMN digest_scheme TEXT NOT NULL DEFAULT 'sha256';
ALTER TABLE tokens ADD COLUMN legacy_key TEXT;
ALTER TABLE tokens ADD COLUMN legacy_digest TEXT;
ALTER TABLE tokens ADD COLUMN legacy_salt TEXT;
CREATE TABLE legacy_jwt_keys (
    name       TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    secret     BLOB NOT NULL CHECK (length(secret) >= 1),
    created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE imported_tokens (
    id          TEXT PRIMARY KEY,
    imported_at INTEGER NOT NULL
) STRICT;
