-- Legacy tokens are found by their key (the first characters of the token), and "are there any
-- left" is a look at this index. Its own migration: some PostgreSQL-compatible engines refuse
-- to add a column and index it in one transaction.
CREATE INDEX tokens_legacy_key_idx ON tokens (legacy_key) WHERE legacy_key IS NOT NULL;
