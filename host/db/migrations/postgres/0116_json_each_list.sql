-- A list of text values bound as one parameter, a JSON array, read as a
-- table with a `value` column: `x IN (SELECT value FROM json_each($1))`.
-- SQLite's built-in `json_each` reads it so; PostgreSQL's reads objects
-- (its argument is `json`), and this one, for a `text` argument, reads
-- arrays. One parameter instead of one per value: SQLite looks up a
-- statement's parameters by name in a list, so n placeholders cost n².
CREATE OR REPLACE FUNCTION json_each(list text) RETURNS TABLE (value text)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT json_array_elements_text(list::json) $$;
