-- Waiting resolves (`GET /api/resolve?wait=`): every write to what a resolution reads raises a
-- notification on channel `lanyard_resolve` naming each user whose answer may have changed, in
-- the writing transaction (delivered at commit, to every instance's listener). A change to an
-- organisation's resources names every member. Only the columns a resolution acts on count:
-- resolve's own use counter and timestamps, tests and checks wake nobody.
-- SQLite serves one instance and raises a counter instead (migrations/sqlite); the schemas stay
-- equivalent, as neither adds a table or a column.
CREATE FUNCTION lanyard_resolve_changed(owner_user UUID, owner_organisation UUID) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_notify('lanyard_resolve', id::text) FROM users
    WHERE id = owner_user
       OR id IN (SELECT user_id FROM memberships WHERE organisation_id = owner_organisation);
$$;

CREATE FUNCTION lanyard_configuration_resolve_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND (NEW.user_id, NEW.connection_id, NEW.name, NEW.model, NEW.is_active, NEW.parameters,
                             NEW.organisation_id, NEW.member_access)
                 IS NOT DISTINCT FROM (OLD.user_id, OLD.connection_id, OLD.name, OLD.model, OLD.is_active,
                                       OLD.parameters, OLD.organisation_id, OLD.member_access) THEN
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        PERFORM lanyard_resolve_changed(OLD.user_id, OLD.organisation_id);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM lanyard_resolve_changed(NEW.user_id, NEW.organisation_id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION lanyard_connection_resolve_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND (NEW.owner_user_id, NEW.provider, NEW.base_url, NEW.api_key_encrypted,
                             NEW.organisation_id)
                 IS NOT DISTINCT FROM (OLD.owner_user_id, OLD.provider, OLD.base_url, OLD.api_key_encrypted,
                                       OLD.organisation_id) THEN
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        PERFORM lanyard_resolve_changed(OLD.owner_user_id, OLD.organisation_id);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM lanyard_resolve_changed(NEW.owner_user_id, NEW.organisation_id);
    END IF;
    RETURN NULL;
END;
$$;

-- A user's own rows: their default, their overrides, their memberships.
CREATE FUNCTION lanyard_user_resolve_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM lanyard_resolve_changed(OLD.user_id, NULL);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM lanyard_resolve_changed(NEW.user_id, NULL);
    END IF;
    RETURN NULL;
END;
$$;

-- An organisation's policy and default decide what its service tokens resolve to.
CREATE FUNCTION lanyard_organisation_resolve_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.allow_personal_configurations, NEW.default_configuration_id)
           IS DISTINCT FROM (OLD.allow_personal_configurations, OLD.default_configuration_id) THEN
        PERFORM lanyard_resolve_changed(NULL, NEW.id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER llm_configurations_resolve_changed
    AFTER INSERT OR UPDATE OR DELETE ON llm_configurations
    FOR EACH ROW EXECUTE FUNCTION lanyard_configuration_resolve_changed();
CREATE TRIGGER connections_resolve_changed
    AFTER INSERT OR UPDATE OR DELETE ON connections
    FOR EACH ROW EXECUTE FUNCTION lanyard_connection_resolve_changed();
CREATE TRIGGER user_defaults_resolve_changed
    AFTER INSERT OR UPDATE OR DELETE ON user_defaults
    FOR EACH ROW EXECUTE FUNCTION lanyard_user_resolve_changed();
CREATE TRIGGER conversation_overrides_resolve_changed
    AFTER INSERT OR UPDATE OR DELETE ON conversation_overrides
    FOR EACH ROW EXECUTE FUNCTION lanyard_user_resolve_changed();
CREATE TRIGGER memberships_resolve_changed
    AFTER INSERT OR UPDATE OR DELETE ON memberships
    FOR EACH ROW EXECUTE FUNCTION lanyard_user_resolve_changed();
CREATE TRIGGER organisations_resolve_changed
    AFTER UPDATE ON organisations
    FOR EACH ROW EXECUTE FUNCTION lanyard_organisation_resolve_changed();
