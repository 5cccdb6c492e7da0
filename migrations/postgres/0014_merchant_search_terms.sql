-- Every search term starts with its merchant's tag (the last 6 hex digits of
-- the merchant's id, `search_index::pg_tag`), and the GIN index holds the terms
-- alone: a word's prefix query then reads one merchant's matches, where the
-- merchant's id as a column of the index made each search read the merchant's
-- whole posting list. The stored terms are rewritten once, here, by the same
-- rule the customer writes follow.
CREATE FUNCTION pg_temp.customer_search_terms(merchant UUID, names TEXT, contacts TEXT) RETURNS tsvector
LANGUAGE sql IMMUTABLE AS $$
    SELECT array_to_tsvector(COALESCE(array_agg(right(merchant::text, 6) || t), '{}'))
    FROM (
        SELECT 'n' || w AS t FROM regexp_split_to_table(names, ' ') AS w WHERE w <> ''
        UNION ALL
        SELECT 'c' || substr(r, i)
        FROM regexp_split_to_table(lower(contacts), '[^a-z0-9]+') AS r, generate_series(1, length(r) - 2) AS i
        WHERE length(r) >= 3
    ) AS terms
$$;
DROP INDEX customers_search_terms;
UPDATE customers SET search_terms = pg_temp.customer_search_terms(merchant_id, search_names, search_contacts);
CREATE INDEX customers_search_terms ON customers USING gin (search_terms);
