//! Arguments checked against the tool's input schema before anything is sent.

use app::validation::{Code, FieldError, join};
use serde_json::{Map, Value};

/// The longest message kept per problem: a schema error may quote a large argument.
const MAX_MESSAGE: usize = 300;

/// Every way `arguments` fails `schema`, each named by its JSON Pointer in the arguments;
/// `Err` when the schema itself cannot be compiled.
pub fn check(schema: &Map<String, Value>, arguments: &Value) -> Result<Vec<FieldError>, String> {
    let schema = Value::Object(schema.clone());
    let validator = jsonschema::validator_for(&schema).map_err(|e| bounded(e.to_string()))?;
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
}
