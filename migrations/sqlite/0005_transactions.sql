-- Purchases and refunds a merchant records for its customers; they drive the
-- customer's statistics and a credit account's available credit.
CREATE TABLE transactions (
    merchant_id            BLOB    NOT NULL,
    id                     BLOB    NOT NULL,
    -- The merchant's own id: a second record with it replays the first.
    external_id            TEXT    NOT NULL,
    customer_id            BLOB    NOT NULL,
    type                   TEXT    NOT NULL,
    amount                 INTEGER NOT NULL,
    currency               TEXT    NOT NULL,
    occurred_at            INTEGER NOT NULL,
    payment_method_id      BLOB,
    credit_account_number  TEXT,
    created_at             INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, customer_id) REFERENCES customers (merchant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX transactions_external ON transactions (merchant_id, external_id);
CREATE INDEX transactions_customer ON transactions (merchant_id, customer_id, occurred_at);
