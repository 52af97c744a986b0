DROP TABLE key_reveals;
DROP TABLE conversation_overrides;
