-- SQLite only (its two full-text indexes became one, with terms computed by the code).
-- PostgreSQL searches with trigram indexes over the customer rows and needs no
-- change; this file keeps both folders at the same versions.
SELECT 1;
