-- Login throttling: attempts in progress are counted apart from failures. An attempt holds a
-- place while its password is checked (so parallel guesses cannot slip past the limit), and
-- only a refused password turns it into a failure. Only failures start a lockout, so many
-- correct logins at once from one address are never locked out.
-- Places are counted in two aligned buckets as long as the longest attempt (the request
-- timeout): `in_flight` in the bucket starting at `in_flight_bucket`, `prev_in_flight` in the
-- one before. An attempt ends within its own bucket or the next, so older places (of a
-- replica that died mid-login) are forgotten, and a late end of a forgotten attempt takes
-- nothing from the live ones.
ALTER TABLE login_throttle ADD COLUMN in_flight integer NOT NULL DEFAULT 0 CHECK (in_flight >= 0);
ALTER TABLE login_throttle ADD COLUMN prev_in_flight integer NOT NULL DEFAULT 0 CHECK (prev_in_flight >= 0);
ALTER TABLE login_throttle ADD COLUMN in_flight_bucket timestamptz NOT NULL DEFAULT 'epoch';
