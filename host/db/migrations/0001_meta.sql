-- novum's own bookkeeping. Later migrations add each part's tables.
CREATE TABLE novum_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
