-- Search on PostgreSQL with SQLite's terms: every folded name word ('n' + word)
-- and every suffix of 3 characters or more of the contacts' runs of ASCII
-- letters and digits ('c' + suffix), the lexemes of a tsvector the customer
-- writes compute (`search_index::lexemes`). A search word is a prefix query on
-- one GIN index that holds the merchant too, so its cost follows its matches,
-- not the merchant's size. The trigram indexes it replaces are dropped.
CREATE EXTENSION IF NOT EXISTS btree_gin;
ALTER TABLE customers ADD COLUMN search_terms tsvector;

-- The customers already stored get their terms from the same rule, once, here.
CREATE FUNCTION pg_temp.customer_search_terms(names TEXT, contacts TEXT) RETURNS tsvector
LANGUAGE sql IMMUTABLE AS $$
    SELECT array_to_tsvector(COALESCE(array_agg(t), '{}'))
    FROM (
        SELECT 'n' || w AS t FROM regexp_split_to_table(names, ' ') AS w WHERE w <> ''
        UNION ALL
        SELECT 'c' || substr(r, i)
        FROM regexp_split_to_table(lower(contacts), '[^a-z0-9]+') AS r, generate_series(1, length(r) - 2) AS i
        WHERE length(r) >= 3
    ) AS terms
$$;
UPDATE customers SET search_terms = pg_temp.customer_search_terms(search_names, search_contacts);

CREATE INDEX customers_search_terms ON customers USING gin (merchant_id, search_terms);
DROP INDEX customers_search_names;
DROP INDEX customers_search_contacts;
