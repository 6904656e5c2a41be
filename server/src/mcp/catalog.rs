//! What an MCP endpoint offers: the stored tools, prompts and resources in its scope
//! (one virtual server's links, or every active entity for the gateway's own `/mcp`),
//! read in pages and turned into MCP's wire shapes.

use app::{
    entities::{
        Entity, keys::fold_key, prompt::Prompt, resource::Resource, server::Server, tool::Tool,
    },
    model::EntityKind,
};
use serde_json::{Map, Value, json};
use std::sync::Arc;

use crate::store::{Store, entities::ListQuery};

/// Entries per page of a `*/list` answer (the cursor is the offset of the next page).
pub const PAGE: usize = 500;

/// Which entities an MCP request may see, resolved from its path before rmcp runs.
#[derive(Clone, Debug)]
pub enum Scope {
    /// `/mcp`: every active tool, prompt and resource.
    Gateway,
    /// `/servers/{id}/mcp`: this active server's links (active entities only).
    Server(Arc<Server>),
}

impl Scope {
    /// The keys this scope links to, or `None` when it sees every entity of the kind.
    fn links(&self, kind: EntityKind) -> Option<&[String]> {
        let Scope::Server(server) = self else {
            return None;
        };
        server
            .links()
            .into_iter()
            .find_map(|(k, keys)| (k == kind).then_some(keys))
    }
}

/// One page of the active entities of `E` in `scope`, and the cursor of the next page.
pub async fn page<E: Entity>(
    store: &Store,
    scope: &Scope,
    cursor: Option<&str>,
) -> anyhow::Result<(Vec<E>, Option<String>)> {
    let offset = parse_cursor(cursor)?;
    let Some(keys) = scope.links(E::KIND) else {
        let query = ListQuery {
            limit: Some(PAGE as i64),
            offset: offset as i64,
            ..ListQuery::default()
        };
        let (found, total) = store.list_entities::<E>(&query).await?;
        let end = offset + found.len();
        let next = (!found.is_empty() && (end as i64) < total).then(|| end.to_string());
        return Ok((found, next));
    };
    let chunk = keys.iter().skip(offset).take(PAGE);
    let wanted: Vec<&str> = chunk.map(String::as_str).collect();
    let end = offset + wanted.len();
    let found = by_keys::<E>(store, &wanted).await?;
    let next = (end < keys.len()).then(|| end.to_string());
    Ok((found, next))
}

/// The active entity of `E` with this key in `scope` (case folded as keys are), if any.
pub async fn find<E: Entity>(store: &Store, scope: &Scope, key: &str) -> anyhow::Result<Option<E>> {
    let wanted = fold_key(E::KIND, key);
    let stored = match scope.links(E::KIND) {
        None => Some(key),
        Some(keys) => keys
            .iter()
            .map(String::as_str)
            .find(|k| fold_key(E::KIND, k) == wanted),
    };
    let Some(stored) = stored else {
        return Ok(None);
    };
    Ok(by_keys::<E>(store, &[stored]).await?.pop())
}

/// The active entities with these keys, in the order asked, from one snapshot.
async fn by_keys<E: Entity>(store: &Store, keys: &[&str]) -> anyhow::Result<Vec<E>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = store.begin_snapshot().await?;
    let mut found = tx.entities_by_keys::<E>(keys).await?;
    tx.rollback().await?;
    Ok(keys
        .iter()
        .filter_map(|k| found.remove(fold_key(E::KIND, k).as_ref()))
        .filter(Entity::is_active)
        .collect())
}

fn parse_cursor(cursor: Option<&str>) -> anyhow::Result<usize> {
    match cursor {
        None => Ok(0),
        Some(c) => c
            .parse()
            .map_err(|_| anyhow::Error::new(BadCursor(c.chars().take(64).collect()))),
    }
}

/// A `cursor` this gateway did not hand out.
#[derive(Debug, thiserror::Error)]
#[error("invalid cursor {0:?}: pass the nextCursor of the previous page")]
pub struct BadCursor(pub String);

/// A tool as `tools/list` shows it.
pub fn tool_json(tool: &Tool) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(tool.name));
    if let Some(title) = &tool.display_name {
        out.insert("title".into(), json!(title));
    }
    if let Some(description) = &tool.description {
        out.insert("description".into(), json!(description));
    }
    out.insert(
        "inputSchema".into(),
        Value::Object(tool.input_schema.clone()),
    );
    if let Some(schema) = &tool.output_schema {
        out.insert("outputSchema".into(), Value::Object(schema.clone()));
    }
    let annotations = annotations(&tool.annotations);
    if !annotations.is_empty() {
        out.insert("annotations".into(), Value::Object(annotations));
    }
    Value::Object(out)
}

/// The annotations MCP defines, with the types it gives them: an imported tool may
/// carry others (or these with other types), which a client could not parse.
fn annotations(stored: &Map<String, Value>) -> Map<String, Value> {
    const HINTS: [&str; 4] = [
        "readOnlyHint",
        "destructiveHint",
        "idempotentHint",
        "openWorldHint",
    ];
    stored
        .iter()
        .filter(|(k, v)| {
            (HINTS.contains(&k.as_str()) && v.is_boolean()) || (*k == "title" && v.is_string())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A prompt as `prompts/list` shows it: its arguments are its input schema's properties.
pub fn prompt_json(prompt: &Prompt) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(prompt.name));
    if let Some(title) = &prompt.display_name {
        out.insert("title".into(), json!(title));
    }
    if let Some(description) = &prompt.description {
        out.insert("description".into(), json!(description));
    }
    out.insert("arguments".into(), Value::Array(prompt_arguments(prompt)));
    Value::Object(out)
}

fn prompt_arguments(prompt: &Prompt) -> Vec<Value> {
    let required = required_arguments(prompt);
    let Some(Value::Object(properties)) = prompt.input_schema.get("properties") else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, schema)| {
            let mut arg = Map::new();
            arg.insert("name".into(), json!(name));
            if let Some(d) = schema.get("description").and_then(Value::as_str) {
                arg.insert("description".into(), json!(d));
            }
            arg.insert("required".into(), json!(required.contains(&name.as_str())));
            Value::Object(arg)
        })
        .collect()
}

/// The names the prompt's input schema lists as `required`.
pub fn required_arguments(prompt: &Prompt) -> Vec<&str> {
    prompt
        .input_schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// True for a URI template (RFC 6570): listed by `resources/templates/list`, not read.
pub fn is_template(resource: &Resource) -> bool {
    resource.uri.as_deref().is_some_and(|u| u.contains('{'))
}

/// A resource as `resources/list` shows it (or `resources/templates/list`, for a template).
pub fn resource_json(resource: &Resource) -> Value {
    let mut out = Map::new();
    let uri_field = if is_template(resource) {
        "uriTemplate"
    } else {
        "uri"
    };
    out.insert(uri_field.into(), json!(resource.uri));
    out.insert("name".into(), json!(resource.name));
    if let Some(description) = &resource.description {
        out.insert("description".into(), json!(description));
    }
    if let Some(mime) = &resource.mime_type {
        out.insert("mimeType".into(), json!(mime));
    }
    Value::Object(out)
}

/// What `resources/read` answers: the stored text, or the base64 `blob`, with its type.
pub fn contents_json(resource: &Resource) -> Value {
    let mut out = Map::new();
    out.insert("uri".into(), json!(resource.uri));
    if let Some(mime) = &resource.mime_type {
        out.insert("mimeType".into(), json!(mime));
    }
    match (&resource.blob, &resource.content) {
        (Some(blob), _) => out.insert("blob".into(), json!(blob)),
        (None, text) => out.insert("text".into(), json!(text.as_deref().unwrap_or_default())),
    };
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_keep_only_what_mcp_defines_with_its_types() {
        let stored = json!({"readOnlyHint": true, "destructiveHint": "no", "title": "T", "x": 1});
        let kept = annotations(stored.as_object().unwrap());
        assert_eq!(
            Value::Object(kept),
            json!({"readOnlyHint": true, "title": "T"})
        );
    }

    #[test]
    fn prompt_arguments_come_from_the_schema_with_required_marked() {
        let prompt = Prompt {
            name: Some("greet".into()),
            input_schema: json!({"type": "object", "properties": {
                "who": {"type": "string", "description": "whom"}, "tone": {"type": "string"}},
                "required": ["who"]})
            .as_object()
            .unwrap()
            .clone(),
            ..Prompt::default()
        };
        assert_eq!(
            prompt_json(&prompt)["arguments"],
            json!([{"name": "who", "description": "whom", "required": true},
                   {"name": "tone", "required": false}])
        );
    }

    #[test]
    fn a_blob_is_read_as_blob_and_text_as_text() {
        let mut r = Resource {
            uri: Some("file:///a".into()),
            mime_type: Some("image/png".into()),
            blob: Some("AAAA".into()),
            ..Resource::default()
        };
        assert_eq!(contents_json(&r)["blob"], "AAAA");
        r.blob = None;
        r.content = Some("hi".into());
        assert_eq!(contents_json(&r)["text"], "hi");
    }

    #[test]
    fn a_cursor_not_handed_out_is_refused() {
        assert!(parse_cursor(Some("abc")).is_err());
        assert_eq!(parse_cursor(Some("500")).unwrap(), 500);
    }
}
