-- PostgreSQL only (its search moved to a tsvector of SQLite's terms); this file
-- keeps both folders at the same versions.
SELECT 1;
