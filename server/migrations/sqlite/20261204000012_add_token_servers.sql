-- A token limited to the MCP endpoints of named virtual servers: a JSON array of their
-- names. NULL: the token reaches everything its user may (the REST API included).
ALTER TABLE api_tokens ADD COLUMN servers TEXT;
