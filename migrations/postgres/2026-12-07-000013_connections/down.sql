-- Back to one table: each configuration takes its connection's provider, base URL, key and
-- last test. Only a key still sealed under the configuration's own binding (not yet re-sealed
-- by the upgrade) opens there: every other key is dropped, and its configurations become
-- inactive (not default) until a key is entered again.
ALTER TABLE llm_configurations
    ADD COLUMN provider TEXT,
    ADD COLUMN api_key_encrypted BYTEA,
    ADD COLUMN key_id TEXT,
    ADD COLUMN api_key_hint TEXT,
    ADD COLUMN base_url TEXT,
    ADD COLUMN test_status TEXT NOT NULL DEFAULT 'untested' CHECK (test_status IN ('untested', 'ok', 'failed')),
    ADD COLUMN test_message TEXT,
    ADD COLUMN test_latency_ms BIGINT,
    ADD COLUMN tested_at TIMESTAMP;
UPDATE llm_configurations c SET
    provider = n.provider,
    api_key_encrypted = CASE WHEN n.legacy_configuration_id = c.id THEN n.api_key_encrypted END,
    key_id = CASE WHEN n.legacy_configuration_id = c.id THEN n.key_id END,
    api_key_hint = CASE WHEN n.legacy_configuration_id = c.id THEN n.api_key_hint END,
    base_url = n.base_url,
    is_default = c.is_default AND (n.api_key_encrypted IS NULL OR n.legacy_configuration_id IS NOT DISTINCT FROM c.id),
    is_active = c.is_active AND (n.api_key_encrypted IS NULL OR n.legacy_configuration_id IS NOT DISTINCT FROM c.id),
    test_status = n.test_status,
    test_message = n.test_message,
    test_latency_ms = n.test_latency_ms,
    tested_at = n.tested_at
FROM connections n WHERE n.id = c.connection_id;
ALTER TABLE llm_configurations ALTER COLUMN provider SET NOT NULL;
ALTER TABLE llm_configurations ADD CONSTRAINT llm_configurations_key_id_with_key
    CHECK ((api_key_encrypted IS NULL) = (key_id IS NULL));
ALTER TABLE llm_configurations DROP COLUMN connection_id;
DROP TABLE connection_models;
DROP TABLE connections;
CREATE INDEX llm_configurations_provider_idx ON llm_configurations (provider);
CREATE INDEX llm_configurations_key_id_idx ON llm_configurations (key_id);
