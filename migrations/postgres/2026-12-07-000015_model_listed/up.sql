-- Whether a configuration's model is in its connection's catalogue (Ollama lists `x:latest` for
-- `x`), kept up to date when the catalogue or the configuration's model or connection changes
-- (`db::llm_configurations::ModelInCatalogue`), so that listing a configuration reads a column
-- instead of probing the catalogue once per row.
ALTER TABLE llm_configurations ADD COLUMN model_listed BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE llm_configurations SET model_listed = EXISTS (
    SELECT 1 FROM connection_models
    INNER JOIN connections ON connections.id = connection_models.connection_id
    WHERE connection_models.connection_id = llm_configurations.connection_id
    AND (connection_models.model = llm_configurations.model
         OR (connections.provider = 'ollama' AND connection_models.model = llm_configurations.model || ':latest'))
);
