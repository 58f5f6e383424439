-- What `uptime` says on each compute host, as its agent last reported it
-- (os-hypervisors uptime, before 2.88 its own route, from 2.88 in show).
ALTER TABLE compute_nodes ADD COLUMN uptime TEXT;
