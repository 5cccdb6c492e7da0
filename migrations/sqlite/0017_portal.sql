-- The merchant portal's people and their sessions.
--
-- A user signs in with an email and a password (argon2id, peppered with a key
-- kept outside the database). A session is known by the SHA-256 of its cookie's
-- random token; the token itself is never stored.
CREATE TABLE portal_users (
    merchant_id    BLOB    NOT NULL,
    id             BLOB    NOT NULL,
    email          TEXT    NOT NULL,
    role           TEXT    NOT NULL,
    password_hash  TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, id)
);
-- Signing in finds a user by email before the merchant is known.
CREATE UNIQUE INDEX portal_users_email ON portal_users (email);
CREATE UNIQUE INDEX portal_users_id ON portal_users (id);

CREATE TABLE portal_sessions (
    merchant_id   BLOB    NOT NULL,
    id            BLOB    NOT NULL,
    token_hash    BLOB    NOT NULL,
    user_id       BLOB    NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, id)
);
CREATE UNIQUE INDEX portal_sessions_token ON portal_sessions (token_hash);
CREATE INDEX portal_sessions_user ON portal_sessions (merchant_id, user_id);
