-- PostgreSQL only (its search terms start with the merchant's tag); this file
-- keeps both folders at the same versions.
SELECT 1;
