-- One full-text index for `search` words, with the terms computed by the
-- application (see src/store/search_index.rs): `names` holds the folded name
-- words, `contacts` every suffix of every run of letters and digits of the email
-- and phone. It replaces the names index and the contacts trigram index: the
-- usual word (a name prefix or any part of a contact) becomes one prefix query
-- over both columns instead of two queries, one of them a phrase of trigrams
-- checked by position; ×2.5 the searches per second at a million customers, and
-- one index to write instead of two.
--
-- The customer writes index their rows in their own transaction; a trigger
-- still removes a deleted customer. The index starts empty and is built from the
-- customers' rows at the next start, before the service answers
-- (`search_index_builds` says it is pending).

DROP TRIGGER customers_fts_insert;
DROP TRIGGER customers_fts_delete;
DROP TRIGGER customers_fts_update_names;
DROP TRIGGER customers_fts_update_contacts;
DROP TABLE customer_names_fts;
DROP TABLE customer_contacts_fts;

CREATE VIRTUAL TABLE customer_search_fts USING fts5 (
    names, contacts, content = '', contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 0'
);

CREATE TRIGGER customers_search_delete AFTER DELETE ON customers BEGIN
    DELETE FROM customer_search_fts
    WHERE rowid = (SELECT search_partition << 40 FROM merchants WHERE id = old.merchant_id) | old.seq;
END;

CREATE TABLE search_index_builds (name TEXT PRIMARY KEY) WITHOUT ROWID;
INSERT INTO search_index_builds (name) VALUES ('customer_search_fts');
