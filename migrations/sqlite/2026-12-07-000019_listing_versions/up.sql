-- A version per user that changes whenever anything their configuration listing shows changes:
-- an instance may keep a serialised listing and serve it again while the version it was read at
-- is still current (`http::ListingCache`). Raised by triggers on every table the listing reads,
-- in the writing transaction, so that no write path can forget it; read in the same round trip
-- as the caller's token. A change to an organisation's resources raises it for every member.
-- Keep equivalent to migrations/postgres.
ALTER TABLE users ADD COLUMN listing_version BIGINT NOT NULL DEFAULT 0;

CREATE TRIGGER llm_configurations_listing_version_insert AFTER INSERT ON llm_configurations BEGIN
    UPDATE users SET listing_version = listing_version + 1
    WHERE id = NEW.user_id
       OR id IN (SELECT user_id FROM memberships WHERE organisation_id = NEW.organisation_id);
END;
CREATE TRIGGER llm_configurations_listing_version_update AFTER UPDATE ON llm_configurations BEGIN
    UPDATE users SET listing_version = listing_version + 1
    WHERE id = OLD.user_id
       OR id IN (SELECT user_id FROM memberships WHERE organisation_id = OLD.organisation_id);
    UPDATE users SET listing_version = listing_version + 1
    WHERE id = NEW.user_id
       OR id IN (SELECT user_id FROM memberships WHERE organisation_id = NEW.organisation_id);
END;
CREATE TRIGGER llm_configurations_listing_version_delete AFTER DELETE ON llm_configurations BEGIN
    UPDATE users SET listing_version = listing_version + 1
    WHERE id = OLD.user_id
       OR id IN (SELECT user_id FROM memberships WHERE organisation_id = OLD.organisation_id);
END;
CREATE TRIGGER connections_listing_version_insert AFTER INSERT ON connections BEGIN
    UPDATE users SET listing_version = listing_version + 1
    WHERE id = NEW.owner_user_id
       OR id IN (SELECT user_id FROM memberships WHERE organisation_id = NEW.organisation_id);
END;
CREATE TRIGGER connections_listing_version_update AFTER UPDATE ON connections BEGIN
    UPDATE users SET listing_version = listing_version + 1
    WHERE id = OLD.owner_user_id
       OR id IN (SELECT user_id FROM memberships WHERE organisation_id = OLD.organisation_id);
    UPDATE users SET listing_version = listing_version + 1
    WHERE id = NEW.owner_user_id
       OR id IN (SELECT user_id FROM memberships WHERE organisation_id = NEW.organisation_id);
END;
CREATE TRIGGER connections_listing_version_delete AFTER DELETE ON connections BEGIN
    UPDATE users SET listing_version = listing_version + 1
    WHERE id = OLD.owner_user_id
       OR id IN (SELECT user_id FROM memberships WHERE organisation_id = OLD.organisation_id);
END;
-- A user's own rows: their default, their memberships (which organisations' configurations they
-- see, and whether they may edit them).
CREATE TRIGGER user_defaults_listing_version_insert AFTER INSERT ON user_defaults BEGIN
    UPDATE users SET listing_version = listing_version + 1 WHERE id = NEW.user_id;
END;
CREATE TRIGGER user_defaults_listing_version_update AFTER UPDATE ON user_defaults BEGIN
    UPDATE users SET listing_version = listing_version + 1 WHERE id IN (OLD.user_id, NEW.user_id);
END;
CREATE TRIGGER user_defaults_listing_version_delete AFTER DELETE ON user_defaults BEGIN
    UPDATE users SET listing_version = listing_version + 1 WHERE id = OLD.user_id;
END;
CREATE TRIGGER memberships_listing_version_insert AFTER INSERT ON memberships BEGIN
    UPDATE users SET listing_version = listing_version + 1 WHERE id = NEW.user_id;
END;
CREATE TRIGGER memberships_listing_version_update AFTER UPDATE ON memberships BEGIN
    UPDATE users SET listing_version = listing_version + 1 WHERE id IN (OLD.user_id, NEW.user_id);
END;
CREATE TRIGGER memberships_listing_version_delete AFTER DELETE ON memberships BEGIN
    UPDATE users SET listing_version = listing_version + 1 WHERE id = OLD.user_id;
END;
-- An organisation's name and policy show in its members' listings.
CREATE TRIGGER organisations_listing_version_update AFTER UPDATE ON organisations BEGIN
    UPDATE users SET listing_version = listing_version + 1
    WHERE id IN (SELECT user_id FROM memberships WHERE organisation_id = NEW.id);
END;
