-- Login throttling: one counter per (scope, subject), e.g. ('ip', '192.0.2.7') or
-- ('account', 'user:alice'). Failures are counted in two fixed windows (the current and the
-- previous one), whose weighted sum is the sliding-window count; `strikes` is how many
-- lockouts this counter has had, so each one lasts longer. A row past `expires_at` counts as
-- empty and is deleted by the sweep.
CREATE TABLE login_throttle (
    scope         text        NOT NULL CHECK (scope IN ('ip', 'account')),
    subject       text        NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    window_start  timestamptz NOT NULL,
    failures      integer     NOT NULL CHECK (failures >= 0),
    prev_failures integer     NOT NULL CHECK (prev_failures >= 0),
    strikes       integer     NOT NULL CHECK (strikes >= 0),
    locked_until  timestamptz,
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (scope, subject)
);
CREATE INDEX login_throttle_expires ON login_throttle (expires_at);
