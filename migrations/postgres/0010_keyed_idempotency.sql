-- Idempotency records are now stored as keyed digests (an HMAC under a key
-- derived from the master key): the unkeyed SHA-256 of a request that carried a
-- card number let the number and its security code be recovered from a copy of
-- the database. The old records are deleted, not kept beside the new ones; a
-- retry of a request made before the upgrade runs again.
DELETE FROM idempotency_keys;

-- The scope the request's route required: a replay is answered only to a key
-- holding it.
ALTER TABLE idempotency_keys ADD COLUMN required_scope TEXT;
