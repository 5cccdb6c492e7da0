-- Webhook endpoints and their delivery queue.
--
-- An endpoint follows the merchant's event feed with a cursor of its own
-- (`cursor_pos`, `cursor_id`: the last event it has queued deliveries for), so
-- an event is queued for every endpoint that enabled it exactly when the feed
-- shows it, and never missed (the feed never puts an event behind a cursor).
-- The signing secret is sealed like card data; after a rotation the previous
-- one keeps signing beside it until `previous_expires_at`.
CREATE TABLE webhook_endpoints (
    merchant_id          UUID    NOT NULL,
    id                   UUID    NOT NULL,
    url                  TEXT    NOT NULL,
    description          TEXT,
    enabled_events       TEXT    NOT NULL,
    status               TEXT    NOT NULL,
    secret               BYTEA   NOT NULL,
    previous_secret      BYTEA,
    previous_expires_at  BIGINT,
    key_version          BIGINT  NOT NULL,
    cursor_pos           BIGINT  NOT NULL,
    cursor_id            UUID    NOT NULL,
    failing_since        BIGINT,
    created_at           BIGINT  NOT NULL,
    updated_at           BIGINT  NOT NULL,
    PRIMARY KEY (merchant_id, id)
);
CREATE INDEX webhook_endpoints_key_version ON webhook_endpoints (key_version);

-- One row per event and endpoint; `webhook-id` is the event's id, the same on
-- every attempt. `payload` is the event as `/events` shows it (ids only), kept
-- so every attempt signs the same bytes.
CREATE TABLE webhook_deliveries (
    merchant_id       UUID    NOT NULL,
    id                UUID    NOT NULL,
    endpoint_id       UUID    NOT NULL,
    event_id          UUID    NOT NULL,
    event_type        TEXT    NOT NULL,
    payload           TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    attempts          BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at   BIGINT  NOT NULL,
    give_up_at        BIGINT  NOT NULL,
    last_status_code  BIGINT,
    last_latency_ms   BIGINT,
    last_error        TEXT,
    created_at        BIGINT  NOT NULL,
    delivered_at      BIGINT,
    PRIMARY KEY (merchant_id, id),
    UNIQUE (merchant_id, endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (merchant_id, endpoint_id, id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (merchant_id, endpoint_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_done ON webhook_deliveries (created_at) WHERE status <> 'pending';
