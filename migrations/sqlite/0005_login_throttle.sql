-- Login throttling: one counter per (scope, subject), e.g. ('ip', '192.0.2.7') or
-- ('account', 'user:alice'). Failures are counted in two fixed windows (the current and the
-- previous one), whose weighted sum is the sliding-window count; `strikes` is how many
-- lockouts this counter has had, so each one lasts longer. Times are INTEGER microseconds.
-- A row past `expires_at` counts as empty and is deleted by the sweep.
CREATE TABLE login_throttle (
    scope         TEXT    NOT NULL CHECK (scope IN ('ip', 'account')),
    subject       TEXT    NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    window_start  INTEGER NOT NULL,
    failures      INTEGER NOT NULL CHECK (failures >= 0),
    prev_failures INTEGER NOT NULL CHECK (prev_failures >= 0),
    strikes       INTEGER NOT NULL CHECK (strikes >= 0),
    locked_until  INTEGER,
    expires_at    INTEGER NOT NULL,
    PRIMARY KEY (scope, subject)
) STRICT;
CREATE INDEX login_throttle_expires ON login_throttle (expires_at);
