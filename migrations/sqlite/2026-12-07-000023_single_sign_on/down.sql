DROP TABLE single_sign_on_states;
ALTER TABLE memberships DROP COLUMN from_single_sign_on;
ALTER TABLE organisations DROP COLUMN managed;
DROP INDEX users_oidc_subject_idx;
ALTER TABLE users DROP COLUMN oidc_subject;
