DROP TABLE connection_checks;
DROP INDEX connections_next_check_at_idx;
ALTER TABLE connections
    DROP COLUMN next_check_at,
    DROP COLUMN check_claimed_at,
    DROP COLUMN check_failures,
    DROP COLUMN expires_at;
