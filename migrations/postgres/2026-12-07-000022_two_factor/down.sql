DELETE FROM security_events WHERE event NOT IN ('user_disabled', 'user_enabled', 'password_reset');
ALTER TABLE security_events DROP CONSTRAINT security_events_event_check;
ALTER TABLE security_events ADD CONSTRAINT security_events_event_check CHECK (event IN ('user_disabled', 'user_enabled', 'password_reset'));
DROP TABLE second_factor_failures;
DROP TABLE login_challenges;
DROP TABLE recovery_codes;
DROP TABLE second_factors;
