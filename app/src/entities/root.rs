//! Roots: the file-system or web locations MCP servers may work in.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    Entity,
    common::{
        Tag, Timestamp, Visibility, check_name, check_tags, check_url, default_true, required,
    },
    entity_common, entity_key,
    keys::{has_dot_dot_segment, key_field},
};
use crate::{
    model::EntityKind,
    validation::{Code, Errors, join},
};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Root {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    pub uri: Option<String>,
    pub name: Option<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default = "default_true")]
    pub is_active: bool,
    #[serde(default)]
    pub visibility: Visibility,
    #[serde(default)]
    pub created_at: Option<Timestamp>,
    #[serde(default)]
    pub updated_at: Option<Timestamp>,
}

impl Entity for Root {
    const KIND: EntityKind = EntityKind::Root;
    entity_common!();

    entity_key!(uri);
    fn summary(&self) -> String {
        self.key().to_owned()
    }

    fn validate(&mut self, base: &str, errors: &mut Errors) {
        let pointer = join(base, "uri");
        if let Some(uri) = key_field(&mut self.uri, &pointer, errors) {
            check_url(uri, &["file", "http", "https"], &pointer, errors);
            // Checked as the file system reads the path: decoded, `\` a separator.
            if uri.starts_with("file://") && has_dot_dot_segment(uri) {
                errors.add(
                    pointer,
                    Code::PathTraversal,
                    "a file root must not contain '..' segments, also when percent-encoded (%2e%2e, ..%2f)",
                );
            }
        }
        if let Some(name) = required(&self.name, &join(base, "name"), errors) {
            check_name(name, &join(base, "name"), errors);
        }
        check_tags(&mut self.tags, &join(base, "tags"), errors);
    }
}
