-- PostgreSQL dialect of the SQLite migration of the same version.
-- Point-of-sale credit (seed 004): per-merchant settings, financing plans,
-- credit accounts and their security questions.

-- The IIN virtual card numbers are issued under (NULL: the documented default)
-- and whether the merchant may override customer verification.
ALTER TABLE merchants ADD COLUMN vcc_bin TEXT;
ALTER TABLE merchants ADD COLUMN allow_merchant_override BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE financing_plans (
    merchant_id     UUID    NOT NULL,
    plan_id         BIGINT NOT NULL,
    -- The id events name the plan by.
    id              UUID    NOT NULL,
    name            TEXT    NOT NULL,
    offer_category  TEXT    NOT NULL,
    apr             TEXT    NOT NULL,
    -- JSON: [{"term": 3, "adminFee": 0}, ...], admin fees in minor units.
    terms           TEXT    NOT NULL,
    created_at      BIGINT NOT NULL,
    modified_at     BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, plan_id)
);

CREATE TABLE credit_accounts (
    merchant_id          UUID    NOT NULL,
    account_number       TEXT    NOT NULL,
    -- The id events name the account by.
    id                   UUID    NOT NULL,
    customer_id          UUID    NOT NULL,
    account_type         TEXT    NOT NULL,
    credit_limit         BIGINT NOT NULL,
    outstanding          BIGINT NOT NULL DEFAULT 0,
    interest_rate        TEXT    NOT NULL,
    risk_rating          TEXT    NOT NULL,
    preferred_language   TEXT,
    tos_agreement        BOOLEAN NOT NULL,
    payment_protection   BOOLEAN NOT NULL,
    status               TEXT    NOT NULL,
    status_reason        TEXT    NOT NULL,
    -- The virtual card number: sealed, its last 4, and a keyed HMAC for lookup.
    vcc_secret           BYTEA    NOT NULL,
    vcc_last4            TEXT    NOT NULL,
    vcc_fingerprint      TEXT    NOT NULL,
    key_version          BIGINT NOT NULL,
    verify_failures      BIGINT NOT NULL DEFAULT 0,
    verify_locked_until  BIGINT,
    version              BIGINT NOT NULL,
    created_at           BIGINT NOT NULL,
    closed_at            BIGINT,
    PRIMARY KEY (merchant_id, account_number),
    FOREIGN KEY (merchant_id, customer_id) REFERENCES customers (merchant_id, id) ON DELETE CASCADE
);
CREATE INDEX credit_accounts_customer ON credit_accounts (merchant_id, customer_id);
CREATE UNIQUE INDEX credit_accounts_vcc ON credit_accounts (merchant_id, vcc_fingerprint);
CREATE INDEX credit_accounts_key_version ON credit_accounts (key_version);

CREATE TABLE credit_security_questions (
    merchant_id     UUID    NOT NULL,
    account_number  TEXT    NOT NULL,
    question_id     BIGINT NOT NULL,
    text            TEXT    NOT NULL,
    -- argon2id PHC string of the normalized answer.
    answer_hash     TEXT    NOT NULL,
    PRIMARY KEY (merchant_id, account_number, question_id),
    FOREIGN KEY (merchant_id, account_number) REFERENCES credit_accounts (merchant_id, account_number) ON DELETE CASCADE
);
