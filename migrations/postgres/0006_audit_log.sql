-- What administrators did through the web page: who (kind and name, kept as text so the
-- record outlives the account), what (an action and its target), when, and from which
-- client address. Append-only.
CREATE TABLE audit_log (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL,
    actor_kind text        NOT NULL CHECK (actor_kind IN ('user', 'reseller')),
    actor_name text        NOT NULL,
    action     text        NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
    target     text        NOT NULL,
    client_ip  text        NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
