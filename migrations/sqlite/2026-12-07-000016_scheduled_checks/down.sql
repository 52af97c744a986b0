DROP TABLE connection_checks;
DROP INDEX connections_next_check_at_idx;
ALTER TABLE connections DROP COLUMN next_check_at;
ALTER TABLE connections DROP COLUMN check_claimed_at;
ALTER TABLE connections DROP COLUMN check_failures;
ALTER TABLE connections DROP COLUMN expires_at;
