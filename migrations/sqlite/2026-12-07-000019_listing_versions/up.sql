-- A version per user that changes whenever anything their configuration listing shows changes:
-- an instance may keep a serialised listing and serve it again while the version it was read at
-- is still current (`http::ListingCache`). Bumped by triggers, so that no write path can forget
-- it, and read in the same round trip as the caller's token. Keep equivalent to migrations/postgres.
ALTER TABLE users ADD COLUMN listing_version BIGINT NOT NULL DEFAULT 0;

CREATE TRIGGER llm_configurations_listing_version_insert AFTER INSERT ON llm_configurations BEGIN
    UPDATE users SET listing_version = listing_version + 1 WHERE id = NEW.user_id;
END;
CREATE TRIGGER llm_configurations_listing_version_update AFTER UPDATE ON llm_configurations BEGIN
    UPDATE users SET listing_version = listing_version + 1 WHERE id IN (OLD.user_id, NEW.user_id);
END;
CREATE TRIGGER llm_configurations_listing_version_delete AFTER DELETE ON llm_configurations BEGIN
    UPDATE users SET listing_version = listing_version + 1 WHERE id = OLD.user_id;
END;
CREATE TRIGGER connections_listing_version_insert AFTER INSERT ON connections BEGIN
    UPDATE users SET listing_version = listing_version + 1 WHERE id = NEW.owner_user_id;
END;
CREATE TRIGGER connections_listing_version_update AFTER UPDATE ON connections BEGIN
    UPDATE users SET listing_version = listing_version + 1 WHERE id IN (OLD.owner_user_id, NEW.owner_user_id);
END;
CREATE TRIGGER connections_listing_version_delete AFTER DELETE ON connections BEGIN
    UPDATE users SET listing_version = listing_version + 1 WHERE id = OLD.owner_user_id;
END;
