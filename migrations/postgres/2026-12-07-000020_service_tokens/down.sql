DROP TABLE organisation_reveals;
DROP TABLE service_tokens;
DELETE FROM key_reveals WHERE source = 'organisation_default';
ALTER TABLE key_reveals DROP CONSTRAINT key_reveals_source_check;
ALTER TABLE key_reveals ADD CONSTRAINT key_reveals_source_check CHECK (source IN ('override', 'default', 'fallback'));
