-- A security question's text in several languages (a JSON object by language
-- tag), when the account was opened with more than one; `text` stays the
-- question in the account's own language.
ALTER TABLE credit_security_questions ADD COLUMN texts TEXT;
