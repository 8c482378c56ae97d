-- Revocations for processes that cannot LISTEN (cache.invalidation = "poll", or "auto" on an
-- engine without LISTEN/NOTIFY such as CockroachDB or YugabyteDB, or behind PgBouncer in
-- transaction mode without database.listen_url). Every publisher writes a row here, and
-- NOTIFYs too where it can. `at` is the database's clock when the row was written; pollers
-- read by `at` with an overlap and skip ids already seen, because neither a sequence nor
-- insertion order is commit order on a distributed engine. Rows are pruned by age (the
-- sweep). The index is created apart from nothing else: the table is new, which every
-- PostgreSQL-compatible engine accepts in one transaction.
CREATE TABLE cache_invalidations (
    id      UUID PRIMARY KEY,
    payload TEXT NOT NULL,
    at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX cache_invalidations_at_idx ON cache_invalidations (at);
