-- Login throttling: attempts in progress are counted apart from failures. An attempt holds a
-- place in `in_flight` while its password is checked (so parallel guesses cannot slip past
-- the limit), and only a refused password moves it to `failures`. Only failures start a
-- lockout, so many correct logins at once from one address are never locked out.
-- `in_flight_until` (INTEGER microseconds): no attempt runs longer than this, so places an
-- interrupted replica never gave back are forgotten then.
ALTER TABLE login_throttle ADD COLUMN in_flight INTEGER NOT NULL DEFAULT 0 CHECK (in_flight >= 0);
ALTER TABLE login_throttle ADD COLUMN in_flight_until INTEGER;
