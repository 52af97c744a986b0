ALTER TABLE llm_configurations DROP COLUMN model_listed;
