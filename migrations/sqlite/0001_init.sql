-- Clientele schema, SQLite dialect. Every table's key starts with the merchant id.
-- Ids are UUIDs stored as 16-byte BLOBs; times are milliseconds since the epoch.

CREATE TABLE merchants (
    id          BLOB    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    merchant_id BLOB    NOT NULL REFERENCES merchants (id),
    id          BLOB    NOT NULL,
    key_hash    BLOB    NOT NULL,
    scopes      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    PRIMARY KEY (merchant_id, id)
);
-- Authentication looks a key up by its hash before the merchant is known.
CREATE UNIQUE INDEX api_keys_hash ON api_keys (key_hash);
CREATE UNIQUE INDEX api_keys_id ON api_keys (id);

CREATE TABLE customers (
    -- SQLite only: a stable integer rowid the full-text indexes point at.
    seq                      INTEGER PRIMARY KEY,
    merchant_id              BLOB    NOT NULL REFERENCES merchants (id),
    id                       BLOB    NOT NULL,
    version                  INTEGER NOT NULL,
    status                   TEXT    NOT NULL,
    first_name               TEXT    NOT NULL,
    last_name                TEXT    NOT NULL,
    company_name             TEXT,
    email                    TEXT,
    mobile_phone             TEXT,
    sms_enabled              BOOLEAN NOT NULL,
    use_billing_as_shipping  BOOLEAN NOT NULL,
    billing_line1            TEXT,
    billing_line2            TEXT,
    billing_city             TEXT,
    billing_state            TEXT,
    billing_postal_code      TEXT,
    billing_country          TEXT,
    shipping_line1           TEXT,
    shipping_line2           TEXT,
    shipping_city            TEXT,
    shipping_state           TEXT,
    shipping_postal_code     TEXT,
    shipping_country         TEXT,
    date_of_birth            TEXT,
    preferred_language       TEXT,
    default_payment_method_id BLOB,
    default_ach_payment_method_id BLOB,
    transactions_count       INTEGER NOT NULL DEFAULT 0,
    transactions_volume      INTEGER NOT NULL DEFAULT 0,
    last_transaction_amount  INTEGER,
    last_transaction_at      INTEGER,
    subscriptions_count      INTEGER NOT NULL DEFAULT 0,
    created_at               INTEGER NOT NULL,
    modified_at              INTEGER NOT NULL,
    -- Normalized copies for exact filters and ordering ('' when absent).
    email_key                TEXT    NOT NULL,
    first_name_key           TEXT    NOT NULL,
    last_name_key            TEXT    NOT NULL,
    company_key              TEXT    NOT NULL,
    postal_key               TEXT    NOT NULL,
    -- What the full-text indexes hold.
    search_names             TEXT    NOT NULL,
    search_contacts          TEXT    NOT NULL
);
CREATE UNIQUE INDEX customers_key ON customers (merchant_id, id);
CREATE INDEX customers_created ON customers (merchant_id, created_at, id);
CREATE INDEX customers_modified ON customers (merchant_id, modified_at, id);
CREATE INDEX customers_email ON customers (merchant_id, email_key, id);
CREATE INDEX customers_first_name ON customers (merchant_id, first_name_key, id);
CREATE INDEX customers_last_name ON customers (merchant_id, last_name_key, id);
CREATE INDEX customers_company ON customers (merchant_id, company_key, id);
CREATE INDEX customers_dob ON customers (merchant_id, date_of_birth);
CREATE INDEX customers_postal ON customers (merchant_id, postal_key);
CREATE INDEX customers_status ON customers (merchant_id, status, created_at, id);

-- Names: word prefixes. Contacts: any part of an email or phone (trigrams).
CREATE VIRTUAL TABLE customer_names_fts USING fts5 (
    search_names, content = 'customers', content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 0', prefix = '1 2 3'
);
CREATE VIRTUAL TABLE customer_contacts_fts USING fts5 (
    search_contacts, content = 'customers', content_rowid = 'seq', tokenize = 'trigram'
);
-- Kept in the writing transaction, so a search sees a write the moment it commits.
CREATE TRIGGER customers_fts_insert AFTER INSERT ON customers BEGIN
    INSERT INTO customer_names_fts (rowid, search_names) VALUES (new.seq, new.search_names);
    INSERT INTO customer_contacts_fts (rowid, search_contacts) VALUES (new.seq, new.search_contacts);
END;
CREATE TRIGGER customers_fts_delete AFTER DELETE ON customers BEGIN
    INSERT INTO customer_names_fts (customer_names_fts, rowid, search_names) VALUES ('delete', old.seq, old.search_names);
    INSERT INTO customer_contacts_fts (customer_contacts_fts, rowid, search_contacts) VALUES ('delete', old.seq, old.search_contacts);
END;
CREATE TRIGGER customers_fts_update_names AFTER UPDATE OF search_names ON customers
WHEN old.search_names IS NOT new.search_names BEGIN
    INSERT INTO customer_names_fts (customer_names_fts, rowid, search_names) VALUES ('delete', old.seq, old.search_names);
    INSERT INTO customer_names_fts (rowid, search_names) VALUES (new.seq, new.search_names);
END;
CREATE TRIGGER customers_fts_update_contacts AFTER UPDATE OF search_contacts ON customers
WHEN old.search_contacts IS NOT new.search_contacts BEGIN
    INSERT INTO customer_contacts_fts (customer_contacts_fts, rowid, search_contacts) VALUES ('delete', old.seq, old.search_contacts);
    INSERT INTO customer_contacts_fts (rowid, search_contacts) VALUES (new.seq, new.search_contacts);
END;

CREATE TABLE events (
    merchant_id    BLOB    NOT NULL,
    id             BLOB    NOT NULL,
    type           TEXT    NOT NULL,
    entity_id      BLOB    NOT NULL,
    api_key_id     BLOB,
    correlation_id TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, id)
);
CREATE INDEX events_entity ON events (merchant_id, entity_id, id);
CREATE INDEX events_type ON events (merchant_id, type, id);

CREATE TABLE idempotency_keys (
    merchant_id     BLOB    NOT NULL,
    key             TEXT    NOT NULL,
    request_hash    BLOB    NOT NULL,
    state           TEXT    NOT NULL,
    response_status INTEGER,
    response_body   BLOB,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
