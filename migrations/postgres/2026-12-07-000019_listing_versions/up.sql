-- A version per user that changes whenever anything their configuration listing shows changes:
-- an instance may keep a serialised listing and serve it again while the version it was read at
-- is still current (`http::ListingCache`). Bumped by triggers, so that no write path can forget
-- it, and read in the same round trip as the caller's token. Keep equivalent to migrations/sqlite.
ALTER TABLE users ADD COLUMN listing_version BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION lanyard_configuration_listing_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        UPDATE users SET listing_version = listing_version + 1 WHERE id = OLD.user_id;
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.user_id IS DISTINCT FROM OLD.user_id) THEN
        UPDATE users SET listing_version = listing_version + 1 WHERE id = NEW.user_id;
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION lanyard_connection_listing_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        UPDATE users SET listing_version = listing_version + 1 WHERE id = OLD.owner_user_id;
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.owner_user_id IS DISTINCT FROM OLD.owner_user_id) THEN
        UPDATE users SET listing_version = listing_version + 1 WHERE id = NEW.owner_user_id;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER llm_configurations_listing_version
    AFTER INSERT OR UPDATE OR DELETE ON llm_configurations
    FOR EACH ROW EXECUTE FUNCTION lanyard_configuration_listing_changed();
CREATE TRIGGER connections_listing_version
    AFTER INSERT OR UPDATE OR DELETE ON connections
    FOR EACH ROW EXECUTE FUNCTION lanyard_connection_listing_changed();
