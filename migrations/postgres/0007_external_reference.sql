-- The merchant's own reference for a customer: unique per merchant when set,
-- the key bulk import upserts by, and an exact search filter.
ALTER TABLE customers ADD COLUMN external_reference TEXT;
CREATE UNIQUE INDEX customers_external_reference ON customers (merchant_id, external_reference)
    WHERE external_reference IS NOT NULL;
