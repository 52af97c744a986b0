-- A configuration's parameters (temperature, top_p, max_output_tokens, reasoning_effort,
-- timeout_seconds, api_version, extra_headers) as canonical JSON with only the members set;
-- existing rows have none.
ALTER TABLE llm_configurations ADD COLUMN parameters TEXT NOT NULL DEFAULT '{}';
