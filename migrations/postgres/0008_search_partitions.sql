-- SQLite only (its full-text indexes are keyed by merchant and creation order).
-- PostgreSQL searches with trigram indexes over the customer rows and needs no
-- change; this file keeps both folders at the same versions.
SELECT 1;
