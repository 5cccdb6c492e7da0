-- The payment-method vault. Clear card and account numbers are never stored:
-- `secret` and `tax_id_secret` hold AEAD ciphertext (key_version || nonce ||
-- ciphertext), and only what may be shown (bin, last4) sits beside them.

-- Data keys, each wrapped (AES-256-GCM) by the master key. The highest version
-- encrypts; older ones stay for reading until `clientele keys rotate` has moved
-- every row off them. A system table: keys are not per merchant.
CREATE TABLE encryption_keys (
    version     INTEGER NOT NULL PRIMARY KEY,
    wrapped_key BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE payment_methods (
    merchant_id         BLOB    NOT NULL,
    id                  BLOB    NOT NULL,
    customer_id         BLOB    NOT NULL,
    type                TEXT    NOT NULL,
    name                TEXT,
    status              TEXT    NOT NULL,
    version             INTEGER NOT NULL,
    -- Keyed HMAC of the number: equal for the same card within a merchant.
    fingerprint         TEXT,
    brand               TEXT,
    bin                 TEXT,
    last4               TEXT,
    pan_length          INTEGER,
    exp_month           INTEGER,
    exp_year            INTEGER,
    routing_number      TEXT,
    account_last4       TEXT,
    tax_id_last4        TEXT,
    account_type        INTEGER,
    account_holder_type INTEGER,
    secret              BLOB,
    tax_id_secret       BLOB,
    key_version         INTEGER NOT NULL,
    search_text         TEXT    NOT NULL,
    created_at          INTEGER NOT NULL,
    modified_at         INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, customer_id) REFERENCES customers (merchant_id, id) ON DELETE CASCADE
);
CREATE INDEX payment_methods_customer ON payment_methods (merchant_id, customer_id, created_at, id);
CREATE UNIQUE INDEX payment_methods_fingerprint ON payment_methods (merchant_id, customer_id, fingerprint);
CREATE INDEX payment_methods_key_version ON payment_methods (key_version);
