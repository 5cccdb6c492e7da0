-- The payment-method vault (see the SQLite migration of the same version).

CREATE TABLE encryption_keys (
    version     BIGINT NOT NULL PRIMARY KEY,
    wrapped_key BYTEA  NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE payment_methods (
    merchant_id         UUID    NOT NULL,
    id                  UUID    NOT NULL,
    customer_id         UUID    NOT NULL,
    type                TEXT    NOT NULL,
    name                TEXT,
    status              TEXT    NOT NULL,
    version             BIGINT  NOT NULL,
    fingerprint         TEXT,
    brand               TEXT,
    bin                 TEXT,
    last4               TEXT,
    pan_length          BIGINT,
    exp_month           BIGINT,
    exp_year            BIGINT,
    routing_number      TEXT,
    account_last4       TEXT,
    tax_id_last4        TEXT,
    account_type        BIGINT,
    account_holder_type BIGINT,
    secret              BYTEA,
    tax_id_secret       BYTEA,
    key_version         BIGINT  NOT NULL,
    search_text         TEXT    NOT NULL,
    created_at          BIGINT  NOT NULL,
    modified_at         BIGINT  NOT NULL,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, customer_id) REFERENCES customers (merchant_id, id) ON DELETE CASCADE
);
CREATE INDEX payment_methods_customer ON payment_methods (merchant_id, customer_id, created_at, id);
CREATE UNIQUE INDEX payment_methods_fingerprint ON payment_methods (merchant_id, customer_id, fingerprint);
CREATE INDEX payment_methods_key_version ON payment_methods (key_version);
