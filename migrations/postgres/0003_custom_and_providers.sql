-- PostgreSQL dialect of the SQLite migration of the same version.
-- Custom parameters a merchant declares, the values customers hold for them,
-- and payment providers linked to customers (seed 002).

CREATE TABLE custom_parameters (
    merchant_id  UUID    NOT NULL,
    name         TEXT    NOT NULL,
    id           UUID    NOT NULL,
    type         TEXT    NOT NULL,
    required     BOOLEAN NOT NULL,
    secret       BOOLEAN NOT NULL,
    description  TEXT,
    created_at   BIGINT NOT NULL,
    modified_at  BIGINT NOT NULL,
    -- Retired parameters are no longer accepted; values already stored stay readable.
    retired_at   BIGINT,
    PRIMARY KEY (merchant_id, name)
);

-- One row per value. Non-secret values: `value` (JSON) and `value_key` (the
-- canonical text the exact `custom.<name>=` filter compares). Secret values:
-- `secret` (sealed like card data) and `hint` (the obfuscated form responses show).
CREATE TABLE customer_custom_values (
    merchant_id  UUID    NOT NULL,
    customer_id  UUID    NOT NULL,
    name         TEXT    NOT NULL,
    value        TEXT,
    value_key    TEXT,
    secret       BYTEA,
    hint         TEXT,
    key_version  BIGINT,
    PRIMARY KEY (merchant_id, customer_id, name),
    FOREIGN KEY (merchant_id, customer_id) REFERENCES customers (merchant_id, id) ON DELETE CASCADE
);
CREATE INDEX customer_custom_values_filter ON customer_custom_values (merchant_id, name, value_key);
CREATE INDEX customer_custom_values_key_version ON customer_custom_values (key_version);

CREATE TABLE customer_providers (
    merchant_id            UUID    NOT NULL,
    id                     UUID    NOT NULL,
    customer_id            UUID    NOT NULL,
    provider_config_id     TEXT    NOT NULL,
    provider               TEXT    NOT NULL,
    pp_customer_id         TEXT,
    pp_type                TEXT,
    pp_login_id            TEXT,
    pp_commercial_name     TEXT,
    pp_currencies          TEXT,
    -- apiKey, paymentProvider.key, paymentProvider.hmacKey: sealed, with their obfuscated forms.
    api_key_secret         BYTEA,
    api_key_hint           TEXT,
    pp_key_secret          BYTEA,
    pp_key_hint            TEXT,
    pp_hmac_secret         BYTEA,
    pp_hmac_hint           TEXT,
    key_version            BIGINT,
    has_payment_provider   BOOLEAN NOT NULL,
    created_at             BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, customer_id) REFERENCES customers (merchant_id, id) ON DELETE CASCADE
);
CREATE INDEX customer_providers_customer ON customer_providers (merchant_id, customer_id, created_at, id);
CREATE INDEX customer_providers_key_version ON customer_providers (key_version);
