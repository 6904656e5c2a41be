//! Arguments checked against the tool's input schema before anything is sent.
//!
//! Compiling a JSON Schema costs far more than checking arguments against it, so each
//! compiled validator is kept, keyed by the schema's own text: a tool whose schema
//! changes is checked against the new one at once (its text is a new key), and an old
//! one falls out of the bounded cache when room is needed.

use std::sync::{Arc, LazyLock};

use app::validation::{Code, FieldError, join};
use jsonschema::Validator;
use quick_cache::{Weighter, sync::Cache};
use serde_json::{Map, Value};

/// The longest message kept per problem: a schema error may quote a large argument.
const MAX_MESSAGE: usize = 300;

/// The validators kept, weighed by their schema's length plus a fixed overhead (a
/// compiled validator is a few times its schema's size): at most about this many bytes.
const CACHE_WEIGHT: u64 = 32 << 20;
/// What a cached validator weighs besides its schema text.
const ENTRY_OVERHEAD: u64 = 4096;

#[derive(Clone)]
struct SchemaWeight;

impl Weighter<String, Arc<Validator>> for SchemaWeight {
    fn weight(&self, schema: &String, _: &Arc<Validator>) -> u64 {
        (schema.len() as u64).saturating_mul(4) + ENTRY_OVERHEAD
    }
}

static VALIDATORS: LazyLock<Cache<String, Arc<Validator>, SchemaWeight>> =
    LazyLock::new(|| Cache::with_weighter(1024, CACHE_WEIGHT, SchemaWeight));

/// The compiled validator of `schema`, from the cache when this text was compiled before;
/// `Err` when the schema cannot be compiled (not cached: such a tool is rare and fails
/// every call anyway).
fn validator(schema: &Map<String, Value>) -> Result<Arc<Validator>, String> {
    let text = serde_json::to_string(schema).map_err(|e| bounded(e.to_string()))?;
    if let Some(found) = VALIDATORS.get(&text) {
        return Ok(found);
    }
    let compiled = jsonschema::validator_for(&Value::Object(schema.clone()))
        .map_err(|e| bounded(e.to_string()))?;
    let compiled = Arc::new(compiled);
    VALIDATORS.insert(text, compiled.clone());
    Ok(compiled)
}

/// Every way `arguments` fails `schema`, each named by its JSON Pointer in the arguments;
/// `Err` when the schema itself cannot be compiled.
pub fn check(schema: &Map<String, Value>, arguments: &Value) -> Result<Vec<FieldError>, String> {
    let validator = validator(schema)?;
    Ok(validator
        .iter_errors(arguments)
        .map(|error| {
            let mut pointer = error.instance_path().as_str().to_owned();
            if let jsonschema::error::ValidationErrorKind::Required { property } = error.kind()
                && let Some(name) = property.as_str()
            {
                pointer = join(&pointer, name);
            }
            if pointer.is_empty() {
                pointer = "/".into();
            }
            FieldError {
                pointer,
                code: code_of(error.kind().keyword()),
                message: bounded(error.to_string()),
            }
        })
        .collect())
}

/// The closed set of codes our errors use, from the JSON Schema keyword that failed.
fn code_of(keyword: &str) -> Code {
    match keyword {
        "required" => Code::Required,
        "type" => Code::InvalidType,
        "enum" | "const" => Code::InvalidEnum,
        "maxLength" => Code::TooLong,
        "maxItems" | "maxProperties" => Code::TooMany,
        _ => Code::Invalid,
    }
}

fn bounded(mut text: String) -> String {
    if text.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_problem_is_named_by_its_pointer() {
        let schema = json!({
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "maximum": 7}},
            "required": ["city", "units"]
        });
        let errors = check(schema.as_object().unwrap(), &json!({"days": 9})).unwrap();
        let mut pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        pointers.sort();
        assert_eq!(pointers, ["/city", "/days", "/units"], "{errors:?}");
        assert!(
            check(
                schema.as_object().unwrap(),
                &json!({"city": "Oslo", "units": "c"})
            )
            .unwrap()
            .is_empty()
        );
    }

    #[test]
    fn a_schema_is_compiled_once_and_a_changed_one_is_used_at_once() {
        let mut schema = json!({"type": "object", "properties": {"days": {"type": "integer"}}})
            .as_object()
            .cloned()
            .unwrap();
        let first = validator(&schema).unwrap();
        assert!(
            Arc::ptr_eq(&first, &validator(&schema).unwrap()),
            "the same schema text reuses its compiled validator"
        );
        let arguments = json!({"days": "three"});
        assert_eq!(check(&schema, &arguments).unwrap().len(), 1);

        // The tool's schema is edited: the very next check uses the new one.
        schema["properties"]["days"] = json!({"type": "string"});
        assert!(!Arc::ptr_eq(&first, &validator(&schema).unwrap()));
        assert!(check(&schema, &arguments).unwrap().is_empty());
        schema.insert("required".into(), json!(["city"]));
        let errors = check(&schema, &arguments).unwrap();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].pointer, "/city");
    }
}
