-- Waiting resolves (`GET /api/resolve?wait=`): every write to what a resolution reads raises an
-- instance-wide generation (the `resolve_generation` instance setting), in the writing
-- transaction, whoever writes: a server or a command of another process. Each server watches it
-- and wakes its waiting resolves when it moves. Only the columns a resolution acts on count
-- (`UPDATE OF`): resolve's own use counter and timestamps, tests and checks raise nothing.
-- PostgreSQL notifies per user instead (migrations/postgres); neither adds a table or a column.
INSERT INTO instance_settings (name, value, updated_at) VALUES ('resolve_generation', '0', CURRENT_TIMESTAMP);
CREATE TRIGGER llm_configurations_resolve_changed_insert AFTER INSERT ON llm_configurations BEGIN
    UPDATE instance_settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'resolve_generation';
END;
CREATE TRIGGER llm_configurations_resolve_changed_update AFTER UPDATE OF user_id, connection_id, name, model, is_active, parameters, organisation_id, member_access ON llm_configurations BEGIN
    UPDATE instance_settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'resolve_generation';
END;
CREATE TRIGGER llm_configurations_resolve_changed_delete AFTER DELETE ON llm_configurations BEGIN
    UPDATE instance_settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'resolve_generation';
END;
CREATE TRIGGER connections_resolve_changed_insert AFTER INSERT ON connections BEGIN
    UPDATE instance_settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'resolve_generation';
END;
CREATE TRIGGER connections_resolve_changed_update AFTER UPDATE OF owner_user_id, provider, base_url, api_key_encrypted, organisation_id ON connections BEGIN
    UPDATE instance_settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'resolve_generation';
END;
CREATE TRIGGER connections_resolve_changed_delete AFTER DELETE ON connections BEGIN
    UPDATE instance_settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'resolve_generation';
END;
CREATE TRIGGER user_defaults_resolve_changed_insert AFTER INSERT ON user_defaults BEGIN
    UPDATE instance_settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'resolve_generation';
END;
CREATE TRIGGER user_defaults_resolve_changed_update AFTER UPDATE ON user_defaults BEGIN
    UPDATE instance_settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'resolve_generation';
END;
CREATE TRIGGER user_defaults_resolve_changed_delete AFTER DELETE ON user_defaults BEGIN
    UPDATE instance_settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'resolve_generation';
END;
CREATE TRIGGER conversation_overrides_resolve_changed_insert AFTER INSERT ON conversation_overrides BEGIN
    UPDATE instance_settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'resolve_generation';
END;
CREATE TRIGGER conversation_overrides_resolve_changed_update AFTER UPDATE ON conversation_overrides BEGIN
    UPDATE instance_settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'resolve_generation';
END;
CREATE TRIGGER conversation_overrides_resolve_changed_delete AFTER DELETE ON conversation_overrides BEGIN
    UPDATE instance_settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'resolve_generation';
END;
CREATE TRIGGER memberships_resolve_changed_insert AFTER INSERT ON memberships BEGIN
    UPDATE instance_settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'resolve_generation';
END;
CREATE TRIGGER memberships_resolve_changed_update AFTER UPDATE ON memberships BEGIN
    UPDATE instance_settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'resolve_generation';
END;
CREATE TRIGGER memberships_resolve_changed_delete AFTER DELETE ON memberships BEGIN
    UPDATE instance_settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'resolve_generation';
END;
CREATE TRIGGER organisations_resolve_changed_update AFTER UPDATE OF allow_personal_configurations, default_configuration_id ON organisations BEGIN
    UPDATE instance_settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'resolve_generation';
END;
