-- Verification codes sent by a merchant in the last minute, counted before each
-- send (CLIENTELE_VERIFICATION_SENDS_PER_MINUTE).
CREATE INDEX credit_verifications_sent ON credit_verifications (merchant_id, created_at);
