DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhooks;
ALTER TABLE connections DROP COLUMN expiry_notice;
