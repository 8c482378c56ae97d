-- Cache invalidations between processes sharing one SQLite file (the server and the CLI, or
-- several servers): a writer appends what it changed, each server polls for new rows and
-- drops the cached token checks they name. Old rows are pruned by the writers.
CREATE TABLE invalidations (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    payload TEXT NOT NULL CHECK (length(payload) BETWEEN 1 AND 64)
) STRICT;
