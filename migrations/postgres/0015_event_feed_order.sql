-- The change feed's order: commit order, whatever the number of nodes.
-- `feed_pos` is the writing transaction's id (every event of a transaction
-- shares it; their ids order them within it). A reader returns only events of
-- transactions older than the oldest one of this database still running in its
-- snapshot (`Backend::feed_horizon`), so no event can later commit behind a
-- cursor it handed out. Events written before
-- this migration keep 0, ahead of every later one, in id order as before.
ALTER TABLE events ADD COLUMN feed_pos BIGINT NOT NULL DEFAULT 0;
ALTER TABLE events ALTER COLUMN feed_pos SET DEFAULT (pg_current_xact_id()::text::bigint);
CREATE INDEX events_feed ON events (merchant_id, feed_pos, id);
DROP INDEX events_entity;
CREATE INDEX events_entity ON events (merchant_id, entity_id, feed_pos, id);
DROP INDEX events_type;
CREATE INDEX events_type ON events (merchant_id, type, feed_pos, id);
