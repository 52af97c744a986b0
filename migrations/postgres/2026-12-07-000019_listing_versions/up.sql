-- A version per user that changes whenever anything their configuration listing shows changes:
-- an instance may keep a serialised listing and serve it again while the version it was read at
-- is still current (`http::ListingCache`). Raised by triggers on every table the listing reads,
-- in the writing transaction, so that no write path can forget it; read in the same round trip
-- as the caller's token. A change to an organisation's resources raises it for every member.
-- Keep equivalent to migrations/sqlite.
ALTER TABLE users ADD COLUMN listing_version BIGINT NOT NULL DEFAULT 0;

-- The owner's listing changed: a user's, or every member's of an organisation.
CREATE FUNCTION lanyard_listing_changed(owner_user UUID, owner_organisation UUID) RETURNS void
LANGUAGE sql AS $$
    UPDATE users SET listing_version = listing_version + 1
    WHERE id = owner_user
       OR id IN (SELECT user_id FROM memberships WHERE organisation_id = owner_organisation);
$$;

CREATE FUNCTION lanyard_configuration_listing_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM lanyard_listing_changed(OLD.user_id, OLD.organisation_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND (NEW.user_id IS DISTINCT FROM OLD.user_id
                                                 OR NEW.organisation_id IS DISTINCT FROM OLD.organisation_id)) THEN
        PERFORM lanyard_listing_changed(NEW.user_id, NEW.organisation_id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION lanyard_connection_listing_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM lanyard_listing_changed(OLD.owner_user_id, OLD.organisation_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND (NEW.owner_user_id IS DISTINCT FROM OLD.owner_user_id
                                                 OR NEW.organisation_id IS DISTINCT FROM OLD.organisation_id)) THEN
        PERFORM lanyard_listing_changed(NEW.owner_user_id, NEW.organisation_id);
    END IF;
    RETURN NULL;
END;
$$;

-- A user's own rows: their default, their memberships (which organisations' configurations they
-- see, and whether they may edit them).
CREATE FUNCTION lanyard_user_listing_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM lanyard_listing_changed(OLD.user_id, NULL);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.user_id IS DISTINCT FROM OLD.user_id) THEN
        PERFORM lanyard_listing_changed(NEW.user_id, NULL);
    END IF;
    RETURN NULL;
END;
$$;

-- An organisation's name and policy show in its members' listings.
CREATE FUNCTION lanyard_organisation_listing_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM lanyard_listing_changed(NULL, NEW.id);
    RETURN NULL;
END;
$$;

CREATE TRIGGER llm_configurations_listing_version
    AFTER INSERT OR UPDATE OR DELETE ON llm_configurations
    FOR EACH ROW EXECUTE FUNCTION lanyard_configuration_listing_changed();
CREATE TRIGGER connections_listing_version
    AFTER INSERT OR UPDATE OR DELETE ON connections
    FOR EACH ROW EXECUTE FUNCTION lanyard_connection_listing_changed();
CREATE TRIGGER user_defaults_listing_version
    AFTER INSERT OR UPDATE OR DELETE ON user_defaults
    FOR EACH ROW EXECUTE FUNCTION lanyard_user_listing_changed();
CREATE TRIGGER memberships_listing_version
    AFTER INSERT OR UPDATE OR DELETE ON memberships
    FOR EACH ROW EXECUTE FUNCTION lanyard_user_listing_changed();
CREATE TRIGGER organisations_listing_version
    AFTER UPDATE ON organisations
    FOR EACH ROW EXECUTE FUNCTION lanyard_organisation_listing_changed();
