-- Cache invalidations between replicas travel by LISTEN/NOTIFY on channel
-- tokenauth_invalidate, which needs no table (SQLite's 0004 adds one, polled instead).
-- This migration keeps the version numbers of both backends in step.
COMMENT ON TABLE tokens IS 'tokenauth: one row per issued token; only the SHA-256 of the token is kept';
