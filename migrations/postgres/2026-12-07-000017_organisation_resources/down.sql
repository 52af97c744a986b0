DROP TRIGGER llm_configurations_default_stays_active ON llm_configurations;
DROP TRIGGER user_defaults_configuration_is_active ON user_defaults;
DROP FUNCTION lanyard_default_is_active();
DELETE FROM llm_configurations WHERE organisation_id IS NOT NULL;
DELETE FROM connections WHERE organisation_id IS NOT NULL;
ALTER TABLE llm_configurations ADD COLUMN is_default BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE llm_configurations SET is_default = TRUE WHERE id IN (
    SELECT d.configuration_id FROM user_defaults d
    JOIN llm_configurations c ON c.id = d.configuration_id AND c.user_id = d.user_id
);
DROP TABLE user_defaults;
ALTER TABLE llm_configurations DROP CONSTRAINT llm_configurations_organisation_name_key_unique;
ALTER TABLE llm_configurations DROP CONSTRAINT llm_configurations_one_owner;
ALTER TABLE llm_configurations DROP COLUMN member_access;
ALTER TABLE llm_configurations DROP COLUMN organisation_id;
ALTER TABLE llm_configurations ALTER COLUMN user_id SET NOT NULL;
ALTER TABLE llm_configurations ADD CONSTRAINT llm_configurations_default_is_active CHECK (is_active OR NOT is_default);
CREATE UNIQUE INDEX llm_configurations_one_default_per_user ON llm_configurations (user_id) WHERE is_default;
ALTER TABLE connections DROP CONSTRAINT connections_organisation_name_key_unique;
ALTER TABLE connections DROP CONSTRAINT connections_one_owner;
ALTER TABLE connections DROP COLUMN organisation_id;
ALTER TABLE connections ALTER COLUMN owner_user_id SET NOT NULL;
