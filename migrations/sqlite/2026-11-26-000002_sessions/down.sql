DROP TABLE auth_failures;
DROP TABLE sessions;
