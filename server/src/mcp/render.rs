//! Prompt templates, rendered with minijinja: Jinja syntax as ContextForge exports it,
//! no loader (a template cannot include or read a file), and bounded work (fuel), so a
//! stored template cannot make one `prompts/get` run without end.

use app::entities::prompt::Prompt;
use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};

use super::catalog::required_arguments;

/// Instructions a template may spend: ample for any prompt, small enough to stop a loop
/// over `range(10**9)` within milliseconds.
const FUEL: u64 = 200_000;

/// Why a prompt cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The caller left out arguments the prompt requires (all named).
    #[error("missing required argument(s): {}", .0.join(", "))]
    Missing(Vec<String>),
    /// The stored template does not render (a syntax error, or it ran out of fuel).
    #[error("the prompt's template cannot be rendered: {0}")]
    Template(String),
}

/// The template filled in with `arguments`, after checking the required ones are there.
pub fn render(prompt: &Prompt, arguments: &Map<String, Value>) -> Result<String, RenderError> {
    let missing: Vec<String> = required_arguments(prompt)
        .into_iter()
        .filter(|name| arguments.get(*name).is_none_or(Value::is_null))
        .map(str::to_owned)
        .collect();
    if !missing.is_empty() {
        return Err(RenderError::Missing(missing));
    }
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    // An optional argument left out renders as nothing, as in ContextForge.
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    let template = prompt.template.as_deref().unwrap_or_default();
    env.render_str(template, minijinja::value::Serde(arguments))
        .map_err(|e| RenderError::Template(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prompt(template: &str) -> Prompt {
        Prompt {
            name: Some("p".into()),
            template: Some(template.into()),
            input_schema: json!({"type": "object", "properties": {"who": {}, "n": {}},
                                 "required": ["who"]})
            .as_object()
            .unwrap()
            .clone(),
            ..Prompt::default()
        }
    }

    fn args(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(map) => map,
            other => panic!("arguments must be an object, not {other}"),
        }
    }

    #[test]
    fn renders_jinja_with_the_arguments() {
        let p = prompt("Hello {{ who | upper }}{% if n %}, {{ n }} times{% endif %}!");
        assert_eq!(
            render(&p, &args(json!({"who": "ada"}))).unwrap(),
            "Hello ADA!"
        );
        assert_eq!(
            render(&p, &args(json!({"who": "ada", "n": "2"}))).unwrap(),
            "Hello ADA, 2 times!"
        );
    }

    #[test]
    fn a_missing_required_argument_is_named() {
        let err = render(&prompt("{{ who }}"), &Map::new()).unwrap_err();
        assert_eq!(err.to_string(), "missing required argument(s): who");
    }

    #[test]
    fn templates_cannot_include_files_or_loop_without_end() {
        let include = render(
            &prompt("{% include '/etc/passwd' %}"),
            &args(json!({"who": 1})),
        );
        assert!(matches!(include, Err(RenderError::Template(_))));
        let endless = prompt(
            "{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}",
        );
        assert!(matches!(
            render(&endless, &args(json!({"who": 1}))),
            Err(RenderError::Template(_))
        ));
    }
}
