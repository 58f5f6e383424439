-- Nova's accessIPv4 / accessIPv6 of a server: set at create or update,
-- shown as given (IPv6 canonical), '' when unset.
ALTER TABLE instances ADD COLUMN access_ip_v4 TEXT NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN access_ip_v6 TEXT NOT NULL DEFAULT '';
