-- Full-text rowids partitioned by merchant and ordered by creation.
--
-- A word matching thousands of a merchant's customers used to cost a visit to
-- every matching row: for its merchant (the indexes held every merchant's
-- customers), its creation time (to sort) and the count. The indexes now hold
-- no content and key each customer by `search_partition << 40 | seq`: a
-- merchant's matches are one rowid range, in creation order (the writer stamps
-- creation times that never go back, so `seq` order is creation order), and a
-- search counts and pages inside the index, reading only the rows it returns.

-- A small number per merchant (SQLite may renumber an implicit rowid on VACUUM).
ALTER TABLE merchants ADD COLUMN search_partition INTEGER;
UPDATE merchants SET search_partition = rowid;
CREATE UNIQUE INDEX merchants_search_partition ON merchants (search_partition);
CREATE TRIGGER merchants_search_partition AFTER INSERT ON merchants
WHEN new.search_partition IS NULL BEGIN
    UPDATE merchants SET search_partition = (SELECT COALESCE(MAX(search_partition), 0) + 1 FROM merchants)
    WHERE id = new.id;
END;

DROP TRIGGER customers_fts_insert;
DROP TRIGGER customers_fts_delete;
DROP TRIGGER customers_fts_update_names;
DROP TRIGGER customers_fts_update_contacts;
DROP TABLE customer_names_fts;
DROP TABLE customer_contacts_fts;

-- Names: word prefixes. Contacts: any part of an email or phone (trigrams).
CREATE VIRTUAL TABLE customer_names_fts USING fts5 (
    search_names, content = '', contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 0', prefix = '1 2 3'
);
CREATE VIRTUAL TABLE customer_contacts_fts USING fts5 (
    search_contacts, content = '', contentless_delete = 1, tokenize = 'trigram'
);
INSERT INTO customer_names_fts (rowid, search_names)
    SELECT (m.search_partition << 40) | c.seq, c.search_names
    FROM customers c JOIN merchants m ON m.id = c.merchant_id ORDER BY c.seq;
INSERT INTO customer_contacts_fts (rowid, search_contacts)
    SELECT (m.search_partition << 40) | c.seq, c.search_contacts
    FROM customers c JOIN merchants m ON m.id = c.merchant_id ORDER BY c.seq;

-- Kept in the writing transaction, so a search sees a write the moment it commits.
CREATE TRIGGER customers_fts_insert AFTER INSERT ON customers BEGIN
    INSERT INTO customer_names_fts (rowid, search_names) VALUES (
        (SELECT search_partition << 40 FROM merchants WHERE id = new.merchant_id) | new.seq, new.search_names);
    INSERT INTO customer_contacts_fts (rowid, search_contacts) VALUES (
        (SELECT search_partition << 40 FROM merchants WHERE id = new.merchant_id) | new.seq, new.search_contacts);
END;
CREATE TRIGGER customers_fts_delete AFTER DELETE ON customers BEGIN
    DELETE FROM customer_names_fts
    WHERE rowid = (SELECT search_partition << 40 FROM merchants WHERE id = old.merchant_id) | old.seq;
    DELETE FROM customer_contacts_fts
    WHERE rowid = (SELECT search_partition << 40 FROM merchants WHERE id = old.merchant_id) | old.seq;
END;
CREATE TRIGGER customers_fts_update_names AFTER UPDATE OF search_names ON customers
WHEN old.search_names IS NOT new.search_names BEGIN
    INSERT OR REPLACE INTO customer_names_fts (rowid, search_names) VALUES (
        (SELECT search_partition << 40 FROM merchants WHERE id = new.merchant_id) | new.seq, new.search_names);
END;
CREATE TRIGGER customers_fts_update_contacts AFTER UPDATE OF search_contacts ON customers
WHEN old.search_contacts IS NOT new.search_contacts BEGIN
    INSERT OR REPLACE INTO customer_contacts_fts (rowid, search_contacts) VALUES (
        (SELECT search_partition << 40 FROM merchants WHERE id = new.merchant_id) | new.seq, new.search_contacts);
END;

-- Creation order breaks ties by `seq` (insertion order), which these indexes
-- carry as their rowid: a list or a date range walks them in that order.
DROP INDEX customers_created;
CREATE INDEX customers_created ON customers (merchant_id, created_at);
DROP INDEX customers_status;
CREATE INDEX customers_status ON customers (merchant_id, status, created_at);
