-- The portal user who made a change, beside the API key that did (one or
-- neither: a change by the service itself has no actor).
ALTER TABLE events ADD COLUMN user_id UUID;
