-- The password a guest posts to the metadata service (Nova keeps it in the
-- instance's system metadata): set once, NULL until then.
ALTER TABLE instances ADD COLUMN metadata_password TEXT;
