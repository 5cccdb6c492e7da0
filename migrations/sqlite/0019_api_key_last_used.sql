-- When a key last authenticated a request (written at most every few minutes
-- per key: a list of keys shows which are still in use).
ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
