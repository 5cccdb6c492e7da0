-- Customer verification at the point of sale, and the notification outbox.

-- Codes are kept only as keyed HMACs (the key is derived from the master key and
-- is not in the database), so the table cannot be brute-forced offline.
CREATE TABLE credit_verifications (
    merchant_id     BLOB    NOT NULL,
    id              BLOB    NOT NULL,
    account_number  TEXT    NOT NULL,
    format          TEXT    NOT NULL,
    request_id      TEXT,
    code_hash       TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, account_number) REFERENCES credit_accounts (merchant_id, account_number) ON DELETE CASCADE
);
CREATE INDEX credit_verifications_account ON credit_verifications (merchant_id, account_number, created_at);

-- Messages to deliver. Recipient and text (which holds a code) are sealed like
-- card data. A node leases a message by moving next_attempt_at forward, so
-- several nodes never send the same message twice at once.
CREATE TABLE notification_outbox (
    merchant_id      BLOB    NOT NULL,
    id               BLOB    NOT NULL,
    channel          TEXT    NOT NULL,
    recipient        BLOB    NOT NULL,
    body             BLOB    NOT NULL,
    key_version      INTEGER NOT NULL,
    status           TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    sent_at          INTEGER,
    PRIMARY KEY (merchant_id, id)
);
CREATE INDEX notification_outbox_due ON notification_outbox (status, next_attempt_at);
CREATE INDEX notification_outbox_key_version ON notification_outbox (key_version);
