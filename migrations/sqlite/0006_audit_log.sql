-- What administrators did through the web page: who (kind and name, kept as text so the
-- record outlives the account), what (an action and its target), when, and from which
-- client address. Append-only; times are INTEGER microseconds.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    actor_kind TEXT    NOT NULL CHECK (actor_kind IN ('user', 'reseller')),
    actor_name TEXT    NOT NULL,
    action     TEXT    NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
    target     TEXT    NOT NULL,
    client_ip  TEXT    NOT NULL
) STRICT;
CREATE INDEX audit_log_at ON audit_log (at);
