DROP TRIGGER connections_listing_version ON connections;
DROP TRIGGER llm_configurations_listing_version ON llm_configurations;
DROP FUNCTION lanyard_connection_listing_changed();
DROP FUNCTION lanyard_configuration_listing_changed();
ALTER TABLE users DROP COLUMN listing_version;
