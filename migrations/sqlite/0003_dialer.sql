-- The dialer dialect: user groups (with an optional IP regex and owning reseller), the
-- users' dialer attributes, and the resellers' allowed IPs and balance.
CREATE TABLE user_groups (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 150),
    -- A regular expression the client IP must match at login (unanchored search); NULL: any.
    allowed_regex TEXT,
    -- The reseller that owns the group; a removed reseller leaves its groups unowned.
    reseller_id   INTEGER REFERENCES principals (id) ON DELETE SET NULL,
    created_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX user_groups_reseller_idx ON user_groups (reseller_id) WHERE reseller_id IS NOT NULL;

-- Users: admin flag, SMS sender, user group (a group with members cannot be removed).
ALTER TABLE principals ADD COLUMN admin INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1));
ALTER TABLE principals ADD COLUMN sms_from TEXT;
ALTER TABLE principals ADD COLUMN group_id INTEGER REFERENCES user_groups (id) ON DELETE RESTRICT;
CREATE INDEX principals_group_idx ON principals (group_id) WHERE group_id IS NOT NULL;
-- Resellers: allowed client addresses, a JSON array of CIDRs ('[]': any); balance, a decimal
-- kept as its exact text (SQLite has no decimal type; NULL for users).
ALTER TABLE principals ADD COLUMN allowed_ips TEXT NOT NULL DEFAULT '[]';
ALTER TABLE principals ADD COLUMN balance TEXT;
