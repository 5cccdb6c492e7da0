-- Clientele schema, PostgreSQL dialect. Same tables and versions as the SQLite
-- folder; every key starts with the merchant id so the schema can be distributed
-- by merchant. Times are milliseconds since the epoch, as on SQLite.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE merchants (
    id          UUID   NOT NULL PRIMARY KEY,
    name        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    merchant_id UUID   NOT NULL REFERENCES merchants (id),
    id          UUID   NOT NULL,
    key_hash    BYTEA  NOT NULL,
    scopes      TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    PRIMARY KEY (merchant_id, id)
);
CREATE UNIQUE INDEX api_keys_hash ON api_keys (key_hash);
CREATE UNIQUE INDEX api_keys_id ON api_keys (id);

CREATE TABLE customers (
    merchant_id              UUID    NOT NULL REFERENCES merchants (id),
    id                       UUID    NOT NULL,
    version                  BIGINT  NOT NULL,
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
    default_payment_method_id UUID,
    default_ach_payment_method_id UUID,
    transactions_count       BIGINT  NOT NULL DEFAULT 0,
    transactions_volume      BIGINT  NOT NULL DEFAULT 0,
    last_transaction_amount  BIGINT,
    last_transaction_at      BIGINT,
    subscriptions_count      BIGINT  NOT NULL DEFAULT 0,
    created_at               BIGINT  NOT NULL,
    modified_at              BIGINT  NOT NULL,
    -- Byte-order collation, as SQLite's BINARY, so both order alike.
    email_key                TEXT COLLATE "C" NOT NULL,
    first_name_key           TEXT COLLATE "C" NOT NULL,
    last_name_key            TEXT COLLATE "C" NOT NULL,
    company_key              TEXT COLLATE "C" NOT NULL,
    postal_key               TEXT COLLATE "C" NOT NULL,
    search_names             TEXT    NOT NULL,
    search_contacts          TEXT    NOT NULL,
    PRIMARY KEY (merchant_id, id)
);
CREATE INDEX customers_created ON customers (merchant_id, created_at, id);
CREATE INDEX customers_modified ON customers (merchant_id, modified_at, id);
CREATE INDEX customers_email ON customers (merchant_id, email_key, id);
CREATE INDEX customers_first_name ON customers (merchant_id, first_name_key, id);
CREATE INDEX customers_last_name ON customers (merchant_id, last_name_key, id);
CREATE INDEX customers_company ON customers (merchant_id, company_key, id);
CREATE INDEX customers_dob ON customers (merchant_id, date_of_birth);
CREATE INDEX customers_postal ON customers (merchant_id, postal_key);
CREATE INDEX customers_status ON customers (merchant_id, status, created_at, id);
-- Trigram indexes serve both `LIKE 'word%'`/`LIKE '% word%'` (name prefixes) and
-- `LIKE '%part%'` (any part of an email or phone).
CREATE INDEX customers_search_names ON customers USING gin (search_names gin_trgm_ops);
CREATE INDEX customers_search_contacts ON customers USING gin (search_contacts gin_trgm_ops);

CREATE TABLE events (
    merchant_id    UUID   NOT NULL,
    id             UUID   NOT NULL,
    type           TEXT   NOT NULL,
    entity_id      UUID   NOT NULL,
    api_key_id     UUID,
    correlation_id TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, id)
);
CREATE INDEX events_entity ON events (merchant_id, entity_id, id);
CREATE INDEX events_type ON events (merchant_id, type, id);

CREATE TABLE idempotency_keys (
    merchant_id     UUID   NOT NULL,
    key             TEXT   NOT NULL,
    request_hash    BYTEA  NOT NULL,
    state           TEXT   NOT NULL,
    response_status INTEGER,
    response_body   BYTEA,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
