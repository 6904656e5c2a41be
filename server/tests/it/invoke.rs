//! The tool-call engine against a real upstream on loopback: each credential kind arrives
//! exactly as stored, arguments are checked and sent, answers are mapped, and the
//! outbound guard, size cap, timeout and redirect rule hold.

use std::sync::Arc;

use app::entities::tool::Tool;
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use server::{
    config::Settings,
    crypto::Cipher,
    entities::Entities,
    invoke::{InvokeError, Invoker},
    store::Store,
};

use crate::common::{
    SECRET, TestDb, on_each_backend,
    upstream::{OAUTH_CLIENT, Upstream},
};

fn cipher() -> Cipher {
    Cipher::new(&SecretString::from(SECRET))
}

/// An invoker that may call loopback (the upstream lives there).
fn invoker(configure: impl FnOnce(&mut Settings)) -> Invoker {
    let mut settings = Settings {
        allow_private_networks: true,
        ..Settings::default()
    };
    configure(&mut settings);
    Invoker::new(Arc::new(cipher()), &settings)
}

/// Stores a tool through the service layer (credentials sealed) and reads it back.
pub async fn stored_tool(store: &Store, body: Value) -> Tool {
    let cipher = cipher();
    let service = Entities {
        store,
        cipher: &cipher,
        actor: "test",
    };
    let created: Tool = service.create(body).await.expect("valid tool");
    store
        .get_entity(created.id.expect("an id"))
        .await
        .unwrap()
        .expect("stored")
}

fn args(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("arguments must be an object, not {other}"),
    }
}

/// The `Authorization` value of HTTP Basic credentials.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[tokio::test]
async fn each_credential_kind_reaches_the_upstream_exactly_as_stored() {
    on_each_backend(|db: TestDb| async move {
        let store = db.store().await;
        let up = Upstream::start().await;
        let invoker = invoker(|_| {});
        let kinds = [
            (
                "basic",
                json!({"type": "basic", "username": "ann", "password": "pw-basic-1"}),
            ),
            ("bearer", json!({"type": "bearer", "token": "tok-bearer-2"})),
            (
                "headers",
                json!({"type": "authheaders", "headers": {"X-Api-Key": "key-3", "X-Tenant": "acme"}}),
            ),
            (
                "query",
                json!({"type": "query_param", "params": {"api_key": "qp-4"}}),
            ),
            (
                "oauth",
                json!({"type": "oauth", "client_id": OAUTH_CLIENT.0, "client_secret": OAUTH_CLIENT.1,
                       "token_url": up.url("/oauth/token"), "scopes": "read"}),
            ),
        ];
        for (kind, auth) in kinds {
            let tool = stored_tool(
                &store,
                json!({"name": format!("cred-{kind}"), "url": up.url(&format!("/{kind}")),
                       "request_type": "GET", "auth": auth}),
            )
            .await;
            assert!(tool.auth_value.is_some(), "{kind}: stored encrypted");
            let out = invoker
                .call_tool(&tool, args(json!({"q": "x"})))
                .await
                .unwrap();
            assert!(!out.is_error, "{kind}: {}", out.text);
        }
        let auth = |path: &str| up.seen(path)[0].headers.get("authorization").cloned();
        assert_eq!(auth("/basic"), Some(basic("ann", "pw-basic-1")));
        assert_eq!(auth("/bearer"), Some("Bearer tok-bearer-2".into()));
        let headers = &up.seen("/headers")[0].headers;
        assert_eq!(headers["x-api-key"], "key-3");
        assert_eq!(headers["x-tenant"], "acme");
        assert_eq!(
            up.seen("/query")[0].query.as_deref(),
            Some("api_key=qp-4&q=x")
        );
        assert_eq!(auth("/oauth"), Some("Bearer access-1".into()));
        let token_requests = up.seen("/oauth/token");
        assert_eq!(token_requests.len(), 1);
        assert!(token_requests[0].body.contains("scope=read"));
        // The token is cached until it expires: a second call fetches none.
        let oauth = stored_tool(
            &store,
            json!({"name": "cred-oauth-again", "url": up.url("/oauth"), "request_type": "GET",
                   "auth": {"type": "oauth", "client_id": OAUTH_CLIENT.0, "client_secret": OAUTH_CLIENT.1,
                            "token_url": up.url("/oauth/token"), "scopes": "read"}}),
        )
        .await;
        invoker.call_tool(&oauth, Map::new()).await.unwrap();
        assert_eq!(up.tokens_issued(), 1);
        assert_eq!(
            up.seen("/oauth")[1].headers["authorization"],
            "Bearer access-1"
        );
    })
    .await;
}

#[tokio::test]
async fn arguments_are_checked_against_the_schema_then_sent_as_body_or_query() {
    let db = TestDb::sqlite();
    let store = db.store().await;
    let up = Upstream::start().await;
    let invoker = invoker(|_| {});
    let schema = json!({"type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"]});
    let post = stored_tool(
        &store,
        json!({"name": "forecast", "url": up.url("/forecast"), "request_type": "POST",
               "input_schema": schema}),
    )
    .await;
    let refused = invoker
        .call_tool(&post, args(json!({"days": "three"})))
        .await
        .unwrap_err();
    let InvokeError::InvalidArguments(problems) = refused else {
        panic!("{refused:?}")
    };
    let mut pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
    pointers.sort();
    assert_eq!(pointers, ["/city", "/days"], "{problems:?}");
    assert!(up.seen("/forecast").is_empty(), "nothing sent");
    let out = invoker
        .call_tool(&post, args(json!({"city": "Oslo", "days": 3})))
        .await
        .unwrap();
    assert!(!out.is_error, "{}", out.text);
    let seen = &up.seen("/forecast")[0];
    assert_eq!(seen.method, "POST");
    assert_eq!(
        serde_json::from_str::<Value>(&seen.body).unwrap(),
        json!({"city": "Oslo", "days": 3})
    );
    assert_eq!(seen.headers["content-type"], "application/json");
    let get = stored_tool(
        &store,
        json!({"name": "lookup", "url": up.url("/lookup"), "request_type": "DELETE",
               "input_schema": {"type": "object"}}),
    )
    .await;
    invoker
        .call_tool(&get, args(json!({"q": "a b", "tags": ["x", "y"], "n": 2})))
        .await
        .unwrap();
    let seen = &up.seen("/lookup")[0];
    assert_eq!(seen.method, "DELETE");
    assert_eq!(seen.query.as_deref(), Some("q=a+b&tags=x&tags=y&n=2"));
    assert!(seen.body.is_empty());
}

#[tokio::test]
async fn answers_are_filtered_and_error_answers_are_bounded_and_never_show_the_secret() {
    let db = TestDb::sqlite();
    let store = db.store().await;
    let up = Upstream::start().await;
    let invoker = invoker(|_| {});
    let filtered = stored_tool(
        &store,
        json!({"name": "names", "url": up.url("/names"), "jsonpath_filter": "$.data[*].name",
               "output_schema": {"type": "object"}}),
    )
    .await;
    let out = invoker.call_tool(&filtered, Map::new()).await.unwrap();
    assert_eq!(out.text, r#"["alpha","beta"]"#);
    assert_eq!(out.structured, Some(json!({"result": ["alpha", "beta"]})));
    assert!(!out.is_error);
    let plain = stored_tool(&store, json!({"name": "plain", "url": up.url("/plain")})).await;
    let out = invoker.call_tool(&plain, Map::new()).await.unwrap();
    assert_eq!(
        out.structured, None,
        "no output schema, no structured content"
    );
    let denied = stored_tool(
        &store,
        json!({"name": "denied", "url": up.url("/status/403"),
               "auth": {"type": "bearer", "token": "tok-never-shown-55"}}),
    )
    .await;
    let out = invoker.call_tool(&denied, Map::new()).await.unwrap();
    assert!(out.is_error);
    assert!(
        out.text
            .starts_with("upstream answered 403 Forbidden: refused; you sent *****"),
        "{}",
        out.text
    );
    assert!(!out.text.contains("tok-never-shown-55"), "{}", out.text);
    let metrics = invoker.metrics().render();
    assert!(
        metrics.contains(r#"mcpgateway_tool_calls_total{tool="names",outcome="ok"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"mcpgateway_tool_call_errors_total{tool="denied",outcome="upstream_status"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn private_targets_are_refused_by_resolved_address_unless_allowed() {
    let db = TestDb::sqlite();
    let store = db.store().await;
    let up = Upstream::start().await;
    let port = up.addr.port();
    let guarded = Invoker::new(Arc::new(cipher()), &Settings::default());
    for (name, url) in [
        ("by-ip", format!("http://127.0.0.1:{port}/x")),
        ("by-name", format!("http://localhost:{port}/x")),
        ("by-v6", format!("http://[::ffff:127.0.0.1]:{port}/x")),
        (
            "metadata",
            "http://169.254.169.254/latest/meta-data/".to_owned(),
        ),
    ] {
        let tool = stored_tool(&store, json!({"name": name, "url": url})).await;
        let out = guarded.call_tool(&tool, Map::new()).await.unwrap();
        assert!(out.is_error, "{name}");
        assert!(
            out.text
                .contains("loopback, private, link-local or metadata"),
            "{name}: {}",
            out.text
        );
    }
    assert!(up.seen("/x").is_empty(), "no request reached the upstream");
    let ws = stored_tool(
        &store,
        json!({"name": "ws", "url": format!("ws://127.0.0.1:{port}/x")}),
    )
    .await;
    let out = invoker(|_| {}).call_tool(&ws, Map::new()).await.unwrap();
    assert!(
        out.is_error && out.text.contains("only http and https"),
        "{}",
        out.text
    );
    let listed = invoker(|s| {
        s.allow_private_networks = false;
        s.outbound_allow = vec!["127.0.0.0/8".into()];
    });
    let tool = stored_tool(
        &store,
        json!({"name": "listed", "url": format!("http://localhost:{port}/x")}),
    )
    .await;
    let out = listed.call_tool(&tool, Map::new()).await.unwrap();
    assert!(!out.is_error, "{}", out.text);
    assert_eq!(up.seen("/x").len(), 1);
    assert!(
        guarded
            .metrics()
            .render()
            .contains(r#"mcpgateway_tool_call_errors_total{tool="by-name",outcome="refused"} 1"#)
    );
}

#[tokio::test]
async fn redirects_stay_on_the_host_and_size_and_time_are_bounded() {
    let db = TestDb::sqlite();
    let store = db.store().await;
    let up = Upstream::start().await;
    let port = up.addr.port();
    let invoker = invoker(|s| s.tool_response_max_kb = 1024);
    let elsewhere = stored_tool(
        &store,
        json!({"name": "elsewhere", "url": up.url(&format!("/redirect?to=http://localhost:{port}/landed")),
               "auth": {"type": "bearer", "token": "tok-redirect-1"}}),
    )
    .await;
    let out = invoker.call_tool(&elsewhere, Map::new()).await.unwrap();
    assert!(
        out.is_error
            && out
                .text
                .contains("303 See Other: a redirect to another host, not followed"),
        "{}",
        out.text
    );
    assert!(
        up.seen("/landed").is_empty(),
        "not followed to another host"
    );
    let same = stored_tool(
        &store,
        json!({"name": "same", "url": up.url(&format!("/redirect?to=http://127.0.0.1:{port}/landed"))}),
    )
    .await;
    let out = invoker.call_tool(&same, Map::new()).await.unwrap();
    assert!(!out.is_error, "{}", out.text);
    assert_eq!(up.seen("/landed").len(), 1);
    let big = stored_tool(&store, json!({"name": "big", "url": up.url("/big")})).await;
    let out = invoker.call_tool(&big, Map::new()).await.unwrap();
    assert!(out.is_error, "{}", out.text);
    assert!(
        out.text.contains("larger than the limit of 1048576 bytes"),
        "{}",
        out.text
    );
    let slow = stored_tool(
        &store,
        json!({"name": "slow", "url": up.url("/slow"), "timeout": 1}),
    )
    .await;
    let started = std::time::Instant::now();
    let out = invoker.call_tool(&slow, Map::new()).await.unwrap();
    assert!(
        out.is_error && out.text.contains("within 1 s"),
        "{}",
        out.text
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}

#[tokio::test]
async fn tools_this_gateway_cannot_call_are_refused_as_not_callable() {
    let db = TestDb::sqlite();
    let store = db.store().await;
    let invoker = invoker(|_| {});
    let mcp = stored_tool(
        &store,
        json!({"name": "remote-mcp", "url": "http://127.0.0.1:9/mcp", "integration_type": "MCP",
               "request_type": "STREAMABLEHTTP"}),
    )
    .await;
    let err = invoker.call_tool(&mcp, Map::new()).await.unwrap_err();
    assert!(matches!(err, InvokeError::NotCallable(_)), "{err:?}");
    let other_key = Invoker::new(
        Arc::new(Cipher::new(&SecretString::from(
            "another-key-entirely-0123456789abcdef",
        ))),
        &Settings {
            allow_private_networks: true,
            ..Settings::default()
        },
    );
    let sealed = stored_tool(
        &store,
        json!({"name": "sealed", "url": "http://127.0.0.1:9/x",
               "auth": {"type": "bearer", "token": "tok-sealed-1"}}),
    )
    .await;
    let err = other_key.call_tool(&sealed, Map::new()).await.unwrap_err();
    let InvokeError::NotCallable(why) = err else {
        panic!("{err:?}")
    };
    assert!(why.contains("cannot be decrypted"), "{why}");
}
