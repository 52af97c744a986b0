DROP TABLE instance_settings;
DROP TABLE master_key_canaries;
DROP TABLE llm_configurations;
DROP TABLE api_tokens;
DROP TABLE users;
