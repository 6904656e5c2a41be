-- Federation (issue #17): tools, prompts and resources discovered on a peer gateway are
-- stored beside local ones, their origin in `doc` (`federation`) and the gateway's id
-- here, so that deleting the gateway deletes them (and, through the link tables'
-- cascades, the servers' links to them) in the same statement. NULL: a local entity.
ALTER TABLE tools ADD COLUMN gateway_id BLOB REFERENCES gateways(id) ON DELETE CASCADE;
CREATE INDEX tools_gateway_id ON tools (gateway_id);

ALTER TABLE prompts ADD COLUMN gateway_id BLOB REFERENCES gateways(id) ON DELETE CASCADE;
CREATE INDEX prompts_gateway_id ON prompts (gateway_id);

ALTER TABLE resources ADD COLUMN gateway_id BLOB REFERENCES gateways(id) ON DELETE CASCADE;
CREATE INDEX resources_gateway_id ON resources (gateway_id);
