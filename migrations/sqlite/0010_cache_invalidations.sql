-- PostgreSQL's 0010 adds a polled table of revocations, for engines without LISTEN/NOTIFY.
-- SQLite has had its own since 0004 (`invalidations`, read when the file changes). This
-- migration keeps the version numbers of both backends in step.
SELECT 1;
