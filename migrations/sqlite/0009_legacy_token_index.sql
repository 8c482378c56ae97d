-- Legacy tokens are found by their key (the first characters of the token), and "are there any
-- left" is a look at this index. (PostgreSQL's 0009 has it as a migration of its own.)
CREATE INDEX tokens_legacy_key_idx ON tokens (legacy_key) WHERE legacy_key IS NOT NULL;
