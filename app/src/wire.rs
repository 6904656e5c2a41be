//! The REST API's request and response shapes, defined once: the server parses them, the
//! browser and the CLI send and read them, and the OpenAPI document's schemas are
//! generated from them, so the three sides cannot drift apart.
//!
//! Requests are parsed with [`parse_all`], so every bad field is named at once; serde's
//! wording is then put in the API's own (`unknown parameter`, `must be …`).

use std::borrow::Cow;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, de};
use serde_json::{Map, Value};

use crate::{
    jobs::{ConflictStrategy, JobStatus},
    model::EntityKind,
    validation::{Code, FieldError, parse_all, parse_partial},
};

// ---- refusals ------------------------------------------------------------------------

/// Every refusal: `{"error": {"code", "message", "details"?, "errors_total"?}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    /// `bad_request`, `validation_failed`, `not_found`, `conflict`, …
    pub code: String,
    pub message: String,
    /// Every invalid field, each with its JSON Pointer (an import file: the first 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<FieldError>>,
    /// An import file's refusal: how many problems there were in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors_total: Option<u64>,
}

/// A bad parameter or option, with why.
pub fn invalid(pointer: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        pointer: pointer.into(),
        code: Code::Invalid,
        message: message.into(),
    }
}

/// serde's complaint about a query parameter or form field in the API's words: a name
/// the request type does not have is `unknown`, the rest keep their own message.
fn parameter_error(error: FieldError, unknown: &str) -> FieldError {
    let message = if error.message.starts_with("unknown field") {
        unknown.to_owned()
    } else {
        error.message
    };
    invalid(error.pointer, message)
}

/// String parameters (a query, form fields) as the JSON object [`parse_all`] reads; a
/// name given twice keeps its first place and its last value.
fn object(pairs: &[(String, String)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect(),
    )
}

// ---- parameter values ----------------------------------------------------------------

/// A yes/no parameter: `true`, `1`, `yes`, `false`, `0`, `no` or empty (any case), or a
/// JSON boolean.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[schemars(transparent)]
pub struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Flag, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Flag;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true or false")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Flag, E> {
                Ok(Flag(b))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Flag, E> {
                match value.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => Ok(Flag(true)),
                    "false" | "0" | "no" | "" => Ok(Flag(false)),
                    _ => Err(E::custom(format!("`{value}` is not true or false"))),
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// One type name, singular or plural.
pub fn parse_kind(name: &str) -> Result<EntityKind, String> {
    EntityKind::parse(name).ok_or_else(|| {
        format!(
            "`{name}` is not an entity type (tools, gateways, servers, prompts, resources, roots)"
        )
    })
}

/// `tool,server` (singular or plural), each type once; empty means all six.
pub fn parse_types(spec: &str) -> Result<Vec<EntityKind>, String> {
    let mut kinds = Vec::new();
    for name in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let kind = parse_kind(name)?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

/// Types as a parameter: `tool,servers` (see [`parse_types`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[schemars(transparent)]
pub struct TypeList(#[schemars(with = "String")] pub Vec<EntityKind>);

impl<'de> Deserialize<'de> for TypeList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TypeList, D::Error> {
        let spec = Cow::<str>::deserialize(deserializer)?;
        parse_types(&spec).map(TypeList).map_err(de::Error::custom)
    }
}

/// The export file's format: only JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    #[default]
    Json,
}

impl<'de> Deserialize<'de> for ExportFormat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ExportFormat, D::Error> {
        match Cow::<str>::deserialize(deserializer)?.as_ref() {
            "json" => Ok(ExportFormat::Json),
            other => Err(de::Error::custom(format!(
                "`{other}` is not a supported format: use json"
            ))),
        }
    }
}

// ---- export --------------------------------------------------------------------------

/// The query of `GET /admin/export` and `GET /admin/export/preview`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[cfg_attr(feature = "ssr", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "ssr", into_params(parameter_in = Query))]
#[serde(default, deny_unknown_fields)]
pub struct ExportQuery {
    /// Only these types, comma-separated, singular or plural: tools, gateways, servers,
    /// prompts, resources, roots (default all six).
    #[cfg_attr(feature = "ssr", param(value_type = Option<String>))]
    pub types: Option<TypeList>,
    /// Types to leave out (comma-separated).
    #[cfg_attr(feature = "ssr", param(value_type = Option<String>))]
    pub exclude_types: Option<TypeList>,
    /// Comma-separated: entities with any of these tags (all of them with `tags_all`),
    /// plus the servers that use them (which keep all their links).
    pub tags: Option<String>,
    /// Every tag of `tags` must match (default false: any one).
    #[cfg_attr(feature = "ssr", param(value_type = Option<bool>))]
    pub tags_all: Option<Flag>,
    /// Names or globs per type, e.g. `tool:weather_api,server:ai-*`.
    pub include: Option<String>,
    /// Include disabled entities (default false).
    #[cfg_attr(feature = "ssr", param(value_type = Option<bool>))]
    pub include_inactive: Option<Flag>,
    /// Add what selected servers need (default true).
    #[cfg_attr(feature = "ssr", param(value_type = Option<bool>))]
    pub include_dependencies: Option<Flag>,
    /// Only `json` (ContextForge's name, `export_format`, is read too).
    #[serde(alias = "export_format")]
    #[cfg_attr(feature = "ssr", param(value_type = Option<String>))]
    pub format: Option<ExportFormat>,
}

impl ExportQuery {
    /// The query's parameters, and every bad one named (each left out of the query, so
    /// that what depends on the rest can be checked too).
    pub fn parse(pairs: &[(String, String)]) -> (ExportQuery, Vec<FieldError>) {
        let (query, errors) = parse_partial(object(pairs), "");
        let errors = errors
            .into_iter()
            .map(|e| parameter_error(e, "unknown parameter"))
            .collect();
        (query.unwrap_or_default(), errors)
    }

    /// The types to export (empty: all six), or why none is left.
    pub fn kinds(&self) -> Result<Vec<EntityKind>, FieldError> {
        let types = self.types.clone().unwrap_or_default().0;
        let Some(TypeList(excluded)) = self.exclude_types.as_ref().filter(|t| !t.0.is_empty())
        else {
            return Ok(types);
        };
        let base = if types.is_empty() {
            EntityKind::ALL.to_vec()
        } else {
            types
        };
        let kept: Vec<EntityKind> = base.into_iter().filter(|k| !excluded.contains(k)).collect();
        if kept.is_empty() {
            return Err(invalid("/exclude_types", "leaves no type to export"));
        }
        Ok(kept)
    }

    /// The tags of `tags`, trimmed, empty ones left out.
    pub fn tag_list(&self) -> Vec<String> {
        self.tags
            .iter()
            .flat_map(|t| t.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// The body of `POST /admin/export/selective` and `POST /admin/export/preview` (per type,
/// ids or names), and the `selected_entities` of an import (per type, names).
/// ContextForge's `{"entity_selections": {…}, "include_dependencies": …}` is read too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntitySelection {
    #[serde(default, skip_serializing_if = "Vec::is_empty", alias = "tool")]
    pub tools: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", alias = "gateway")]
    pub gateways: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", alias = "server")]
    pub servers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", alias = "prompt")]
    pub prompts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", alias = "resource")]
    pub resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", alias = "root")]
    pub roots: Vec<String>,
    /// Add what the chosen servers need (default true; an export's option only).
    #[serde(default = "yes")]
    pub include_dependencies: bool,
    /// ContextForge's form: the lists one level down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_selections: Option<Box<EntitySelection>>,
}

fn yes() -> bool {
    true
}

impl Default for EntitySelection {
    fn default() -> EntitySelection {
        EntitySelection {
            tools: Vec::new(),
            gateways: Vec::new(),
            servers: Vec::new(),
            prompts: Vec::new(),
            resources: Vec::new(),
            roots: Vec::new(),
            include_dependencies: true,
            entity_selections: None,
        }
    }
}

impl EntitySelection {
    /// The six lists, in [`EntityKind::ALL`]'s order.
    fn lists_mut(&mut self) -> [&mut Vec<String>; 6] {
        [
            &mut self.tools,
            &mut self.gateways,
            &mut self.servers,
            &mut self.prompts,
            &mut self.resources,
            &mut self.roots,
        ]
    }

    /// The list of one type.
    pub fn list_mut(&mut self, kind: EntityKind) -> &mut Vec<String> {
        let lists = EntityKind::ALL.into_iter().zip(self.lists_mut());
        let mut list = lists.filter(|(k, _)| *k == kind).map(|(_, list)| list);
        list.next().expect("a list per type")
    }

    /// Every (type, id or name) chosen, ContextForge's nested lists included.
    pub fn into_picked(mut self) -> Vec<(EntityKind, String)> {
        let lists = EntityKind::ALL.into_iter().zip(self.lists_mut());
        let mut picked: Vec<(EntityKind, String)> = lists
            .flat_map(|(kind, items)| std::mem::take(items).into_iter().map(move |i| (kind, i)))
            .collect();
        picked.extend(
            self.entity_selections
                .into_iter()
                .flat_map(|inner| inner.into_picked()),
        );
        picked
    }

    /// An export's selection from its JSON body, every bad member named at once.
    pub fn parse_export(mut body: Map<String, Value>) -> Result<EntitySelection, Vec<FieldError>> {
        let mut errors = not_an_object(&mut body, "entity_selections", "ids");
        let parsed = parse_all::<EntitySelection>(Value::Object(body), "");
        let selection = parsed.map_err(|e| {
            errors.extend(e.into_iter().map(selection_error));
            std::mem::take(&mut errors)
        })?;
        if !errors.is_empty() {
            return Err(errors);
        }
        if selection.clone().into_picked().is_empty() {
            return Err(vec![invalid("/", "select at least one entity")]);
        }
        Ok(selection)
    }
}

/// A selection given as something else than an object (taken out, and named): serde
/// would read a list as the struct's fields in order.
fn not_an_object(options: &mut Map<String, Value>, name: &str, what: &str) -> Vec<FieldError> {
    match options.get(name) {
        Some(Value::Object(_) | Value::Null) | None => Vec::new(),
        Some(_) => {
            options.shift_remove(name);
            vec![invalid(
                format!("/{name}"),
                format!("must be an object of type → {what}"),
            )]
        }
    }
}

/// serde's complaint about an export's selection in the API's words.
fn selection_error(error: FieldError) -> FieldError {
    let tokens: Vec<&str> = error.pointer.split('/').skip(1).collect();
    let tokens = match tokens.as_slice() {
        ["entity_selections", rest @ ..] if !rest.is_empty() => rest,
        t => t,
    };
    let message = match tokens {
        [name] if error.message.starts_with("unknown field") => {
            return FieldError {
                code: Code::UnknownType,
                message: format!("`{name}` is not an entity type"),
                ..error
            };
        }
        ["include_dependencies"] => "must be true or false",
        [] => "must be an object of type → ids",
        [_] => "must be a list of ids or names",
        [_, _] => "must be an id or a name (a string)",
        _ => return invalid(error.pointer, error.message),
    };
    invalid(error.pointer, message)
}

/// serde's complaint about an import's option in the API's words.
fn import_error(error: FieldError) -> FieldError {
    let tokens: Vec<&str> = error.pointer.split('/').skip(1).collect();
    let message = match tokens.as_slice() {
        ["selected_entities", _] => "must be an entity type with a list of names",
        ["selected_entities", _, _] => "must be a name (a string)",
        _ => return parameter_error(error, "unknown field or parameter"),
    };
    invalid(error.pointer, message)
}

// ---- import --------------------------------------------------------------------------

/// The options of `POST /admin/import` and `POST /admin/import/preview`, beside the file
/// (multipart field `file`, or ContextForge's `import_data` in a JSON body): form
/// fields, the JSON body's other members, or query parameters.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ImportOptions {
    /// skip, update (default), rename or fail (any case).
    #[serde(deserialize_with = "conflict_strategy")]
    pub conflict_strategy: ConflictStrategy,
    /// Check and plan only; write nothing.
    pub dry_run: Flag,
    /// Names or globs per type, e.g. `tool:weather_api,server:ai-*`.
    pub include: Option<String>,
    /// Only these entities of the file, by name (JSON, in a form field).
    pub selected_entities: Option<EntitySelection>,
    /// The exporting gateway's AUTH_ENCRYPTION_SECRET, when it differs from this one's.
    pub source_secret: Option<String>,
    /// ContextForge's name: must equal this gateway's AUTH_ENCRYPTION_SECRET.
    pub rekey_secret: Option<String>,
    /// Leave out, each with a warning, a server's links to entities neither the file
    /// nor this gateway has (default false: such a link refuses the file).
    pub allow_missing_links: Flag,
}

/// A conflict strategy as a parameter: any case; empty is the default.
fn conflict_strategy<'de, D: Deserializer<'de>>(d: D) -> Result<ConflictStrategy, D::Error> {
    let text = Cow::<str>::deserialize(d)?;
    if text.is_empty() {
        return Ok(ConflictStrategy::default());
    }
    text.parse().map_err(de::Error::custom)
}

impl ImportOptions {
    /// The options as gathered from a request (strings, and `selected_entities` as JSON),
    /// every bad one named at once.
    pub fn parse(mut options: Map<String, Value>) -> Result<ImportOptions, Vec<FieldError>> {
        let mut errors = not_an_object(&mut options, "selected_entities", "names");
        let parsed = parse_all::<ImportOptions>(Value::Object(options), "");
        errors.extend(
            parsed
                .as_ref()
                .err()
                .into_iter()
                .flatten()
                .cloned()
                .map(import_error),
        );
        match parsed {
            Ok(options) if errors.is_empty() => Ok(options),
            _ => Err(errors),
        }
    }

    /// The options as form fields (what the browser's wizard and the CLI send); options
    /// at their defaults are left out.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![("conflict_strategy", self.conflict_strategy.to_string())];
        let flags = [
            ("dry_run", self.dry_run),
            ("allow_missing_links", self.allow_missing_links),
        ];
        for (name, _) in flags.into_iter().filter(|(_, on)| on.0) {
            fields.push((name, "true".into()));
        }
        if let Some(selected) = &self.selected_entities {
            fields.push((
                "selected_entities",
                serde_json::to_string(selected).unwrap_or_default(),
            ));
        }
        let optional = [
            ("include", &self.include),
            ("source_secret", &self.source_secret),
            ("rekey_secret", &self.rekey_secret),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                fields.push((name, value.clone()));
            }
        }
        fields
    }
}

// ---- jobs and audit ------------------------------------------------------------------

/// `GET /admin/import/jobs`: recent jobs, newest first (without per-entity results).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobList {
    pub jobs: Vec<JobStatus>,
}

/// The query of `GET /admin/import/jobs`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "ssr", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "ssr", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    /// 1-500, default 50.
    pub limit: Option<i64>,
}

/// The query of `GET /admin/import/status/{id}/results`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "ssr", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "ssr", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ResultsQuery {
    /// The first result's position, from 0 (default 0).
    pub offset: Option<u64>,
    /// 1-1000, default 1000.
    pub limit: Option<u64>,
}

/// `GET /admin/audit`: entries, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditList {
    pub entries: Vec<AuditRecord>,
}

/// One audit entry: who did what, when (never a secret).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditRecord {
    pub id: uuid::Uuid,
    /// RFC 3339.
    #[schemars(with = "String")]
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor: String,
    pub action: String,
    pub target_type: Option<String>,
    pub target_name: Option<String>,
    /// Counts, file digest, key fingerprints (never a secret).
    pub details: Value,
}

/// The query of `GET /admin/audit`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "ssr", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "ssr", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// e.g. export, import, rekey, login.
    pub action: Option<String>,
    /// The actor's email.
    pub user: Option<String>,
    /// RFC 3339 time.
    pub since: Option<String>,
    /// 1-1000, default 100.
    pub limit: Option<i64>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn object_of(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(members) => members,
            other => panic!("not an object: {other}"),
        }
    }

    fn pointers_and_messages(errors: &[FieldError]) -> Vec<(&str, &str, &str)> {
        errors
            .iter()
            .map(|e| (e.pointer.as_str(), e.code.as_str(), e.message.as_str()))
            .collect()
    }

    #[test]
    fn a_query_names_every_bad_parameter_in_the_apis_words() {
        let (query, errors) = ExportQuery::parse(&pairs(&[
            ("types", "tools,widgets"),
            ("format", "xml"),
            ("colour", "red"),
            ("tags_all", "maybe"),
            ("include_inactive", "YES"),
        ]));
        assert_eq!(
            pointers_and_messages(&errors),
            [
                (
                    "/types",
                    "invalid",
                    "`widgets` is not an entity type (tools, gateways, servers, prompts, resources, roots)"
                ),
                (
                    "/format",
                    "invalid",
                    "`xml` is not a supported format: use json"
                ),
                ("/colour", "invalid", "unknown parameter"),
                ("/tags_all", "invalid", "`maybe` is not true or false"),
            ]
        );
        assert_eq!(query.include_inactive, Some(Flag(true)), "the rest is read");
    }

    #[test]
    fn a_query_reads_types_less_the_excluded_ones_and_refuses_none_left() {
        let (query, errors) = ExportQuery::parse(&pairs(&[
            ("exclude_types", "tool,roots"),
            ("export_format", "json"),
            ("tags", " a, ,b "),
        ]));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            query.kinds().unwrap(),
            [
                EntityKind::Gateway,
                EntityKind::Server,
                EntityKind::Prompt,
                EntityKind::Resource
            ]
        );
        assert_eq!(query.tag_list(), ["a", "b"]);
        let (query, _) =
            ExportQuery::parse(&pairs(&[("types", "tools"), ("exclude_types", "tool")]));
        assert_eq!(query.kinds().unwrap_err().pointer, "/exclude_types");
    }

    #[test]
    fn the_browsers_selection_is_what_the_server_reads() {
        let mut sent = EntitySelection {
            include_dependencies: false,
            ..Default::default()
        };
        sent.list_mut(EntityKind::Tool).push("t1".into());
        sent.list_mut(EntityKind::Root).push("r1".into());
        let body = serde_json::to_value(&sent).unwrap();
        assert_eq!(
            body,
            json!({"tools": ["t1"], "roots": ["r1"], "include_dependencies": false})
        );
        let read = EntitySelection::parse_export(object_of(body)).unwrap();
        assert_eq!(read, sent);
        assert_eq!(
            read.into_picked(),
            [
                (EntityKind::Tool, "t1".to_owned()),
                (EntityKind::Root, "r1".to_owned())
            ]
        );
        // ContextForge's form, with singular type names.
        let nested = EntitySelection::parse_export(object_of(
            json!({"entity_selections": {"server": ["s"]}}),
        ))
        .unwrap();
        assert_eq!(
            nested.clone().into_picked(),
            [(EntityKind::Server, "s".to_owned())]
        );
        assert!(nested.include_dependencies);
    }

    #[test]
    fn a_bad_selection_names_every_member() {
        let errors = EntitySelection::parse_export(object_of(json!({
            "widgets": ["x"],
            "tools": "x",
            "servers": ["a", 7],
            "include_dependencies": "yes",
        })))
        .unwrap_err();
        assert_eq!(
            pointers_and_messages(&errors),
            [
                (
                    "/widgets",
                    "unknown_type",
                    "`widgets` is not an entity type"
                ),
                ("/tools", "invalid", "must be a list of ids or names"),
                (
                    "/servers/1",
                    "invalid",
                    "must be an id or a name (a string)"
                ),
                ("/include_dependencies", "invalid", "must be true or false"),
            ]
        );
        let errors =
            EntitySelection::parse_export(object_of(json!({"entity_selections": [["a"]]})))
                .unwrap_err();
        assert_eq!(errors[0].pointer, "/entity_selections");
        assert_eq!(errors[0].message, "must be an object of type → ids");
        let errors = EntitySelection::parse_export(object_of(json!({"tools": []}))).unwrap_err();
        assert_eq!(errors[0].message, "select at least one entity");
    }

    /// The form fields the browser and the CLI send, as the server gathers them.
    fn gathered(options: &ImportOptions) -> Map<String, Value> {
        options
            .fields()
            .into_iter()
            .map(|(name, value)| {
                let value = match name {
                    "selected_entities" => serde_json::from_str(&value).unwrap(),
                    _ => Value::String(value),
                };
                (name.to_owned(), value)
            })
            .collect()
    }

    #[test]
    fn import_options_sent_as_form_fields_read_back_the_same() {
        let mut selected = EntitySelection::default();
        selected.list_mut(EntityKind::Prompt).push("p".into());
        let sent = ImportOptions {
            conflict_strategy: ConflictStrategy::Rename,
            dry_run: Flag(true),
            include: Some("tool:a*".into()),
            selected_entities: Some(selected),
            source_secret: Some("s3cret".into()),
            rekey_secret: None,
            allow_missing_links: Flag(true),
        };
        assert_eq!(ImportOptions::parse(gathered(&sent)).unwrap(), sent);
        let defaults = ImportOptions::default();
        assert_eq!(defaults.fields(), [("conflict_strategy", "update".into())]);
        assert_eq!(ImportOptions::parse(gathered(&defaults)).unwrap(), defaults);
    }

    #[test]
    fn bad_import_options_are_named_without_repeating_a_secret() {
        let list = json!({"selected_entities": [["a"]]});
        let errors = ImportOptions::parse(object_of(list)).unwrap_err();
        assert_eq!(errors[0].pointer, "/selected_entities");
        let options = json!({
            "conflict_strategy": "Merge",
            "dry_run": "perhaps",
            "colour": "red",
            "selected_entities": {"widgets": ["a"], "tools": "a"},
            "source_secret": 12,
        });
        let errors = ImportOptions::parse(object_of(options)).unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/conflict_strategy",
                "/dry_run",
                "/colour",
                "/selected_entities/widgets",
                "/selected_entities/tools",
                "/source_secret"
            ]
        );
        assert_eq!(errors[2].message, "unknown field or parameter");
        assert_eq!(
            errors[3].message,
            "must be an entity type with a list of names"
        );
        assert!(!errors[5].message.contains("12"), "{}", errors[5].message);
        // ConflictStrategy's own words, and any case.
        assert!(errors[0].message.contains("is not a conflict strategy"));
        let upper = json!({"conflict_strategy": "SKIP"});
        let read = ImportOptions::parse(object_of(upper)).unwrap();
        assert_eq!(read.conflict_strategy, ConflictStrategy::Skip);
    }

    #[test]
    fn an_error_envelope_leaves_out_what_it_does_not_have() {
        let bare = ErrorEnvelope {
            error: ErrorBody {
                code: "not_found".into(),
                message: "not found".into(),
                details: None,
                errors_total: None,
            },
        };
        let text = serde_json::to_string(&bare).unwrap();
        assert_eq!(
            text,
            r#"{"error":{"code":"not_found","message":"not found"}}"#
        );
        assert_eq!(serde_json::from_str::<ErrorEnvelope>(&text).unwrap(), bare);
    }
}
