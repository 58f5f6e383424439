-- Nova's accessIPv4 / accessIPv6 of a server: set at create or update,
-- shown as given (IPv6 canonical), '' when unset.
ALTER TABLE instances ADD COLUMN access_ip_v4 TEXT NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN access_ip_v6 TEXT NOT NULL DEFAULT '';
-- Who locked a server (Nova's locked_by: 'owner' or 'admin'); a server the
-- admin locked can't be unlocked by its owner.
ALTER TABLE instances ADD COLUMN locked_by TEXT;
