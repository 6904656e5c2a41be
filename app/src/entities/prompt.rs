//! Prompts: templates with an input schema.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    Entity,
    common::{
        JsonObject, Tag, Timestamp, Visibility, check_schema, check_tags, default_object_schema,
        default_true, required,
    },
    entity_common, entity_key,
    keys::name_key,
    limits::{self, check_description, check_json_size, check_opt},
};
use crate::{
    model::EntityKind,
    validation::{Code, Errors, join},
};

/// The longest template accepted (64 KiB).
pub const MAX_TEMPLATE: usize = 65_536;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Prompt {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub template: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default = "default_object_schema")]
    pub input_schema: JsonObject,
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
    /// Set when discovered on a peer gateway (`None`: local); see [`super::federation`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation: Option<super::Origin>,
}

impl Entity for Prompt {
    const KIND: EntityKind = EntityKind::Prompt;
    entity_common!();

    fn federation(&self) -> Option<&super::Origin> {
        self.federation.as_ref()
    }
    fn set_federation(&mut self, origin: Option<super::Origin>) {
        self.federation = origin;
    }
    entity_key!(name);
    fn summary(&self) -> String {
        let args = self
            .input_schema
            .get("properties")
            .and_then(|p| p.as_object())
            .map_or(0, |p| p.len());
        format!(
            "{args} argument(s), {} characters",
            self.template.as_deref().unwrap_or_default().chars().count()
        )
    }

    fn validate(&mut self, base: &str, errors: &mut Errors) {
        name_key(&mut self.name, base, errors);
        for (field, value) in [
            ("original_name", &self.original_name),
            ("custom_name", &self.custom_name),
            ("display_name", &self.display_name),
        ] {
            check_opt(value, limits::SHORT_TEXT, &join(base, field), errors);
        }
        check_description(&self.description, base, errors);
        if let Some(t) = required(&self.template, &join(base, "template"), errors)
            && t.len() > MAX_TEMPLATE
        {
            errors.add(
                join(base, "template"),
                Code::TooLong,
                format!("must be at most {MAX_TEMPLATE} bytes"),
            );
        }
        check_schema(&self.input_schema, &join(base, "input_schema"), errors);
        check_json_size(&self.input_schema, &join(base, "input_schema"), errors);
        check_tags(&mut self.tags, &join(base, "tags"), errors);
    }
}
