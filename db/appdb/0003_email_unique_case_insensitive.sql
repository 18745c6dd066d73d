-- business-logic checks an email's uniqueness case-insensitively (`lower(email)`); the index now
-- says the same, so that two sign-ups racing past the check with `Ann@x.io` and `ann@x.io`
-- cannot both be stored (the second insert is a unique violation: a 409).
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
