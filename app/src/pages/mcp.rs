//! What the detail pages add for MCP: a server's endpoint URL (with a copy button and a
//! client configuration snippet) and a tool's Test dialog, which calls the tool through
//! the same path as an MCP `tools/call`.

use leptos::{prelude::*, task::spawn_local};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::modal::Modal;
use crate::{api::test_tool, model::ToolTest};

/// A server's MCP URL, a desktop client's configuration for it, and the command that makes
/// a token limited to it. Never a real token: the page shows placeholders.
#[component]
pub fn McpEndpoint(id: Uuid, name: String, public_origin: Option<String>) -> impl IntoView {
    let configured = public_origin.is_some();
    let origin = RwSignal::new(public_origin.unwrap_or_default());
    if !configured {
        // The origin the browser used; known only once hydrated (the server may sit
        // behind a proxy that renames it).
        Effect::new(move |_| {
            if let Ok(o) = window().location().origin() {
                origin.set(o);
            }
        });
    }
    let url = Signal::derive(move || format!("{}/servers/{id}/mcp", origin.get()));
    let command =
        format!("mcpgateway token create --email <your email> --name <token name> --server {name}");
    let config = Signal::derive(move || client_config(&name, &url.get()));
    view! {
        <section class="card mcp-endpoint">
            <h2>"MCP endpoint"</h2>
            <p class="muted">"Streamable HTTP. Clients authenticate with an API token (Bearer)."</p>
            <div class="copy-row">
                <code class="mcp-url">{url}</code>
                <CopyButton text=url label="Copy URL"/>
            </div>
            <h3>"Client configuration"</h3>
            <pre class="json mcp-config">{config}</pre>
            <CopyButton text=config label="Copy configuration"/>
            <p>"Make a token limited to this server, and put it in place of " <code>"<your token>"</code> ":"</p>
            <pre class="json mcp-token-command">{command}</pre>
        </section>
    }
}

/// A desktop client's `mcpServers` entry for a Streamable HTTP endpoint.
fn client_config(name: &str, url: &str) -> String {
    let config = json!({"mcpServers": {name: {
        "type": "http",
        "url": url,
        "headers": {"Authorization": "Bearer <your token>"},
    }}});
    serde_json::to_string_pretty(&config).unwrap_or_default()
}

/// Copies `text` with the Clipboard API and says whether it worked.
#[component]
fn CopyButton(text: Signal<String>, label: &'static str) -> impl IntoView {
    let copied = RwSignal::new(None::<bool>);
    let copy = move |_| {
        let value = text.get_untracked();
        spawn_local(async move { copied.set(Some(write_clipboard(value).await)) });
    };
    view! {
        <button type="button" class="copy" on:click=copy>{label}</button>
        <span class="copy-status" role="status">
            {move || match copied.get() {
                Some(true) => "Copied",
                Some(false) => "Could not copy: select the text and copy it",
                None => "",
            }}
        </span>
    }
}

#[cfg(feature = "hydrate")]
async fn write_clipboard(text: String) -> bool {
    let promise = window().navigator().clipboard().write_text(&text);
    wasm_bindgen_futures::JsFuture::from(promise).await.is_ok()
}

/// Only the browser has a clipboard (a click never runs on the server).
#[cfg(not(feature = "hydrate"))]
async fn write_clipboard(_: String) -> bool {
    false
}

/// How one argument is typed into the form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Input {
    Text,
    Number,
    Integer,
    Boolean,
    /// Objects, arrays, unions and untyped properties: JSON typed by hand.
    Json,
}

/// One top-level property of a tool's input schema.
#[derive(Clone, Debug, PartialEq)]
struct Field {
    name: String,
    input: Input,
    required: bool,
    description: Option<String>,
}

/// The form's fields, in the schema's order.
fn fields(schema: &Value) -> Vec<Field> {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema["properties"].as_object() else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, property)| Field {
            name: name.clone(),
            input: match property["type"].as_str() {
                Some("string") => Input::Text,
                Some("number") => Input::Number,
                Some("integer") => Input::Integer,
                Some("boolean") => Input::Boolean,
                _ => Input::Json,
            },
            required: required.contains(&name.as_str()),
            description: property["description"].as_str().map(str::to_owned),
        })
        .collect()
}

/// The arguments typed in; an empty input is left out. A number that does not parse is
/// sent as text, so the server's schema check names it. JSON that does not parse is
/// refused here, each such field named by its pointer.
fn arguments(values: &[(Field, String)]) -> Result<Map<String, Value>, Vec<String>> {
    let mut arguments = Map::new();
    let mut problems = Vec::new();
    for (field, text) in values {
        if text.trim().is_empty() {
            continue;
        }
        let value = match field.input {
            Input::Text => Value::String(text.clone()),
            Input::Number | Input::Integer => serde_json::from_str::<Value>(text.trim())
                .ok()
                .filter(Value::is_number)
                .unwrap_or_else(|| Value::String(text.clone())),
            Input::Boolean => Value::Bool(text == "true"),
            Input::Json => match serde_json::from_str(text) {
                Ok(value) => value,
                Err(e) => {
                    problems.push(format!("{}: not valid JSON ({e})", pointer(&field.name)));
                    continue;
                }
            },
        };
        arguments.insert(field.name.clone(), value);
    }
    if problems.is_empty() {
        Ok(arguments)
    } else {
        Err(problems)
    }
}

/// The JSON Pointer (RFC 6901) of a top-level argument.
fn pointer(name: &str) -> String {
    format!("/{}", name.replace('~', "~0").replace('/', "~1"))
}

/// The "Test" button of a tool's page and its dialog.
#[component]
pub fn ToolTestButton(id: Uuid, name: String, schema: Value) -> impl IntoView {
    let open = RwSignal::new(false);
    let title = move || format!("Test {name}");
    let form = move || fields(&schema);
    view! {
        <button type="button" class="primary test-tool" on:click=move |_| open.set(true)>"Test"</button>
        <Show when=move || open.get()>
            {
                let (title, fields) = (title(), form());
                view! {
                    <Modal title on_close=Callback::new(move |()| open.set(false))>
                        <TestForm id fields/>
                    </Modal>
                }
            }
        </Show>
    }
}

/// What the dialog shows after a submit.
#[derive(Clone, Debug, PartialEq)]
enum Shown {
    Answer(ToolTest),
    /// Refused before sending (JSON that does not parse).
    Local(Vec<String>),
    /// The server function failed (signed out, no such tool…).
    Failed(String),
}

#[component]
fn TestForm(id: Uuid, fields: Vec<Field>) -> impl IntoView {
    let values: Vec<(Field, RwSignal<String>)> = fields
        .into_iter()
        .map(|f| (f, RwSignal::new(String::new())))
        .collect();
    let shown = RwSignal::new(None::<Shown>);
    let pending = RwSignal::new(false);
    let typed = values.clone();
    let submit = move |ev: web_sys::SubmitEvent| {
        ev.prevent_default();
        let current: Vec<(Field, String)> = typed
            .iter()
            .map(|(f, v)| (f.clone(), v.get_untracked()))
            .collect();
        let arguments = match arguments(&current) {
            Ok(arguments) => Value::Object(arguments).to_string(),
            Err(problems) => return shown.set(Some(Shown::Local(problems))),
        };
        pending.set(true);
        spawn_local(async move {
            let answer = test_tool(id, arguments).await;
            pending.set(false);
            shown.set(Some(match answer {
                Ok(answer) => Shown::Answer(answer),
                Err(e) => Shown::Failed(e.to_string()),
            }));
        });
    };
    let empty = values.is_empty();
    view! {
        <form class="tool-test" on:submit=submit>
            <Show when=move || empty>
                <p class="muted">"This tool takes no arguments."</p>
            </Show>
            {values.into_iter().map(|(field, value)| view! { <ArgumentInput field value/> }).collect_view()}
            <div class="modal-actions">
                <button type="submit" class="primary" disabled=move || pending.get()>
                    {move || if pending.get() { "Calling…" } else { "Call tool" }}
                </button>
            </div>
        </form>
        {move || shown.get().map(|s| view! { <Outcome shown=s/> })}
    }
}

#[component]
fn ArgumentInput(field: Field, value: RwSignal<String>) -> impl IntoView {
    let id = format!("arg-{}", field.name);
    let set = move |ev| value.set(event_target_value(&ev));
    let input = match field.input {
        Input::Text => view! {
            <input type="text" id=id.clone() name=field.name.clone() prop:value=value on:input=set/>
        }
        .into_any(),
        Input::Number | Input::Integer => {
            let step = if field.input == Input::Integer {
                "1"
            } else {
                "any"
            };
            view! {
                <input type="number" step=step id=id.clone() name=field.name.clone() prop:value=value on:input=set/>
            }
            .into_any()
        }
        Input::Boolean => view! {
            <select id=id.clone() name=field.name.clone() prop:value=value on:change=set>
                <option value="">"(not set)"</option>
                <option value="true">"true"</option>
                <option value="false">"false"</option>
            </select>
        }
        .into_any(),
        Input::Json => view! {
            <textarea id=id.clone() name=field.name.clone() rows="3" placeholder="JSON"
                prop:value=value on:input=set></textarea>
        }
        .into_any(),
    };
    view! {
        <div class="field" data-required=field.required.then_some("true")>
            <label for=id>
                <code>{field.name.clone()}</code>
                {field.required.then(|| view! { <span class="required">" (required)"</span> })}
            </label>
            {input}
            {field.description.map(|d| view! { <small class="muted">{d}</small> })}
        </div>
    }
}

#[component]
fn Outcome(shown: Shown) -> impl IntoView {
    match shown {
        Shown::Answer(ToolTest::Called {
            text,
            structured,
            is_error,
        }) => view! {
            <div class="tool-result" class:error=is_error>
                <h3>{if is_error { "The tool answered with an error" } else { "Result" }}</h3>
                <pre class="json result-text">{text}</pre>
                {structured.map(|s| view! {
                    <h3>"Structured content"</h3>
                    <pre class="json result-structured">{s}</pre>
                })}
            </div>
        }
        .into_any(),
        Shown::Answer(ToolTest::Invalid(problems)) => view! {
            <div class="tool-result error">
                <h3>"Invalid arguments (the tool was not called)"</h3>
                <ul class="problems">
                    {problems.into_iter().map(|p| view! {
                        <li><code class="pointer">{p.pointer}</code> ": " {p.message}</li>
                    }).collect_view()}
                </ul>
            </div>
        }
        .into_any(),
        Shown::Local(problems) => view! {
            <div class="tool-result error">
                <h3>"Invalid arguments (the tool was not called)"</h3>
                <ul class="problems">{problems.into_iter().map(|p| view! { <li>{p}</li> }).collect_view()}</ul>
            </div>
        }
        .into_any(),
        Shown::Answer(ToolTest::NotCallable(why)) | Shown::Failed(why) => {
            view! { <p class="tool-result error">{why}</p> }.into_any()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_has_one_typed_field_per_property_with_required_marked() {
        let schema = json!({"type": "object", "required": ["city"], "properties": {
            "city": {"type": "string", "description": "Where"},
            "days": {"type": "integer"}, "ratio": {"type": "number"},
            "metric": {"type": "boolean"}, "where": {"type": "object"}}});
        let got: Vec<(String, Input, bool)> = fields(&schema)
            .into_iter()
            .map(|f| (f.name, f.input, f.required))
            .collect();
        let want = [
            ("city", Input::Text, true),
            ("days", Input::Integer, false),
            ("ratio", Input::Number, false),
            ("metric", Input::Boolean, false),
            ("where", Input::Json, false),
        ];
        assert_eq!(got.len(), want.len());
        for (name, input, required) in want {
            assert!(
                got.contains(&(name.to_owned(), input, required)),
                "{name}: {got:?}"
            );
        }
    }

    #[test]
    fn typed_values_become_json_and_empty_ones_are_left_out() {
        let field = |name: &str, input| Field {
            name: name.into(),
            input,
            required: false,
            description: None,
        };
        let values = [
            (field("city", Input::Text), "Oslo".to_owned()),
            (field("days", Input::Integer), "3".to_owned()),
            (field("ratio", Input::Number), "abc".to_owned()),
            (field("metric", Input::Boolean), "false".to_owned()),
            (field("where", Input::Json), r#"{"lat": 1}"#.to_owned()),
            (field("empty", Input::Text), String::new()),
        ];
        assert_eq!(
            Value::Object(arguments(&values).unwrap()),
            json!({"city": "Oslo", "days": 3, "ratio": "abc", "metric": false,
                   "where": {"lat": 1}})
        );
        let bad = [(field("a/b", Input::Json), "{".to_owned())];
        let problems = arguments(&bad).unwrap_err();
        assert!(
            problems[0].starts_with("/a~1b: not valid JSON"),
            "{problems:?}"
        );
    }
}
