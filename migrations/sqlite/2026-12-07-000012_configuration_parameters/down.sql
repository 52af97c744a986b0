ALTER TABLE llm_configurations DROP COLUMN parameters;
