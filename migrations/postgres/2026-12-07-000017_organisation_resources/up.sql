-- Organisation-owned connections and configurations, and the per-user default.
-- Keep equivalent to migrations/sqlite (a test compares the two schemas).
--
-- A connection or configuration is owned by a user or by an organisation, exactly one of the
-- two; names are unique per owner. An organisation's configuration says what its members may
-- do with its key (`member_access`: 'use', or 'reveal' through their own resolve tokens).
-- Deleting an organisation deletes what it owns (the services delete it first; the cascade is
-- the last line of defence).
ALTER TABLE connections ALTER COLUMN owner_user_id DROP NOT NULL;
ALTER TABLE connections ADD COLUMN organisation_id UUID REFERENCES organisations (id) ON DELETE CASCADE;
ALTER TABLE connections ADD CONSTRAINT connections_one_owner
    CHECK ((owner_user_id IS NULL) <> (organisation_id IS NULL));
ALTER TABLE connections ADD CONSTRAINT connections_organisation_name_key_unique UNIQUE (organisation_id, name_key);

-- A user's default is the user's own choice, one per user (the primary key says so), and may
-- point at an organisation's configuration. It replaces llm_configurations.is_default.
CREATE TABLE user_defaults (
    user_id UUID PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    configuration_id UUID NOT NULL REFERENCES llm_configurations (id) ON DELETE CASCADE
);
CREATE INDEX user_defaults_configuration_id_idx ON user_defaults (configuration_id);
INSERT INTO user_defaults (user_id, configuration_id)
SELECT user_id, id FROM llm_configurations WHERE is_default;

ALTER TABLE llm_configurations ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE llm_configurations ADD COLUMN organisation_id UUID REFERENCES organisations (id) ON DELETE CASCADE;
ALTER TABLE llm_configurations ADD COLUMN member_access TEXT NOT NULL DEFAULT 'use'
    CHECK (member_access IN ('use', 'reveal'));
ALTER TABLE llm_configurations ADD CONSTRAINT llm_configurations_one_owner
    CHECK ((user_id IS NULL) <> (organisation_id IS NULL));
ALTER TABLE llm_configurations ADD CONSTRAINT llm_configurations_organisation_name_key_unique
    UNIQUE (organisation_id, name_key);
-- Dropping the column drops the one-default index and the inactive-default CHECK with it.
ALTER TABLE llm_configurations DROP COLUMN is_default;

-- A default is an active configuration, as the dropped CHECK said: the database refuses a
-- default on an inactive configuration and deactivating someone's default (the services clear
-- defaults first). Triggers, because the rule spans two tables.
CREATE FUNCTION lanyard_default_is_active() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'user_defaults' THEN
        IF EXISTS (SELECT 1 FROM llm_configurations WHERE id = NEW.configuration_id AND NOT is_active) THEN
            RAISE EXCEPTION 'an inactive configuration cannot be a default' USING ERRCODE = 'check_violation';
        END IF;
    ELSIF NOT NEW.is_active AND EXISTS (SELECT 1 FROM user_defaults WHERE configuration_id = NEW.id) THEN
        RAISE EXCEPTION 'an inactive configuration cannot be a default' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER user_defaults_configuration_is_active BEFORE INSERT OR UPDATE ON user_defaults
    FOR EACH ROW EXECUTE FUNCTION lanyard_default_is_active();
CREATE TRIGGER llm_configurations_default_stays_active BEFORE UPDATE OF is_active ON llm_configurations
    FOR EACH ROW EXECUTE FUNCTION lanyard_default_is_active();
