-- The six entity types share one layout: an id, the unique key (name, or URI for
-- resources and roots), the columns lists filter on, and the whole record as JSON
-- (`doc`, credentials inside it encrypted). Server links live in join tables so that
-- renaming or deleting a tool, prompt or resource is seen by every server.
CREATE TABLE tools (
    id         UUID PRIMARY KEY,
    key        TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    is_active  BOOLEAN NOT NULL,
    tag_index  TEXT NOT NULL,
    auth_type  TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    doc        JSON NOT NULL
);
CREATE INDEX tools_name ON tools (name);

CREATE TABLE gateways (
    id         UUID PRIMARY KEY,
    key        TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    is_active  BOOLEAN NOT NULL,
    tag_index  TEXT NOT NULL,
    auth_type  TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    doc        JSON NOT NULL
);
CREATE INDEX gateways_name ON gateways (name);

CREATE TABLE servers (
    id         UUID PRIMARY KEY,
    key        TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    is_active  BOOLEAN NOT NULL,
    tag_index  TEXT NOT NULL,
    auth_type  TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    doc        JSON NOT NULL
);
CREATE INDEX servers_name ON servers (name);

CREATE TABLE prompts (
    id         UUID PRIMARY KEY,
    key        TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    is_active  BOOLEAN NOT NULL,
    tag_index  TEXT NOT NULL,
    auth_type  TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    doc        JSON NOT NULL
);
CREATE INDEX prompts_name ON prompts (name);

CREATE TABLE resources (
    id         UUID PRIMARY KEY,
    key        TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    is_active  BOOLEAN NOT NULL,
    tag_index  TEXT NOT NULL,
    auth_type  TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    doc        JSON NOT NULL
);
CREATE INDEX resources_name ON resources (name);

CREATE TABLE roots (
    id         UUID PRIMARY KEY,
    key        TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    is_active  BOOLEAN NOT NULL,
    tag_index  TEXT NOT NULL,
    auth_type  TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    doc        JSON NOT NULL
);
CREATE INDEX roots_name ON roots (name);

CREATE TABLE server_tools (
    server_id  UUID NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    tool_id    UUID NOT NULL REFERENCES tools(id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    PRIMARY KEY (server_id, tool_id)
);
CREATE INDEX server_tools_tool_id ON server_tools (tool_id);

CREATE TABLE server_prompts (
    server_id  UUID NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    prompt_id  UUID NOT NULL REFERENCES prompts(id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    PRIMARY KEY (server_id, prompt_id)
);
CREATE INDEX server_prompts_prompt_id ON server_prompts (prompt_id);

CREATE TABLE server_resources (
    server_id  UUID NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    resource_id UUID NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    PRIMARY KEY (server_id, resource_id)
);
CREATE INDEX server_resources_resource_id ON server_resources (resource_id);
