-- The change feed's order: commit order. SQLite has one writer at a time, so a
-- position taken inside the writing transaction (one more than the largest
-- committed or written before it) orders events as they commit. Events written
-- before this migration keep 0, ahead of every later one, in id order as before.
ALTER TABLE events ADD COLUMN feed_pos INTEGER NOT NULL DEFAULT 0;
CREATE INDEX events_feed_pos ON events (feed_pos);
CREATE INDEX events_feed ON events (merchant_id, feed_pos, id);
DROP INDEX events_entity;
CREATE INDEX events_entity ON events (merchant_id, entity_id, feed_pos, id);
DROP INDEX events_type;
CREATE INDEX events_type ON events (merchant_id, type, feed_pos, id);
