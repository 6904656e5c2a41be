//! The MCP endpoints, driven by rmcp's own client over real HTTP: what a virtual server
//! offers (only its active links), prompts rendered, resources read, and the door
//! (401 without a token, 404 for an inactive or unknown server, 403 for a foreign Origin).

use std::time::Duration;

use rmcp::{
    ServiceExt,
    model::{GetPromptRequestParams, ReadResourceRequestParams, ResourceContents},
    service::RunningService,
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::{Value, json};

use crate::common::{TestApp, on_each_backend};

/// POSTs `body` to the REST collection `path` as the admin; the created record.
pub async fn create(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let response = app
        .client()
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let created: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "create {path}: {created}");
    created
}

/// Tools, prompts and resources, two servers (`alpha` active, `beta` not); alpha's id.
pub async fn seed(app: &TestApp, token: &str, upstream: &str) -> String {
    let schema = json!({"type": "object", "properties": {"q": {"type": "string"}}});
    for (name, active) in [("echo", true), ("hidden", true), ("off", false)] {
        let tool = json!({"name": name, "url": format!("{upstream}/{name}"), "request_type": "POST",
            "description": format!("the {name} tool"), "input_schema": schema,
            "annotations": {"readOnlyHint": true}, "is_active": active});
        create(app, token, "/tools", tool).await;
    }
    let prompt = json!({"name": "greet", "template": "Hello {{ who }}{% if mood %}, you look {{ mood }}{% endif %}!",
        "description": "a greeting",
        "input_schema": {"type": "object", "properties": {"who": {"type": "string", "description": "whom"},
                         "mood": {"type": "string"}}, "required": ["who"]}});
    create(app, token, "/prompts", prompt).await;
    let text = json!({"name": "readme", "uri": "docs://readme", "mime_type": "text/markdown",
                      "content": "# Read me"});
    let blob = json!({"name": "logo", "uri": "docs://logo", "mime_type": "image/png", "blob": "iVBORw0KGgo="});
    let template = json!({"name": "page", "uri": "docs://pages/{n}", "content": "x"});
    for r in [text, blob, template] {
        create(app, token, "/resources", r).await;
    }
    let alpha = json!({"name": "alpha", "tool_ids": ["echo", "off"], "prompt_ids": ["greet"],
                       "resource_ids": ["docs://readme", "docs://logo", "docs://pages/{n}"]});
    let alpha = create(app, token, "/servers", alpha).await;
    let beta = json!({"name": "beta", "tool_ids": ["echo"], "is_active": false});
    create(app, token, "/servers", beta).await;
    alpha["id"].as_str().unwrap().to_owned()
}

pub async fn connect(
    app: &TestApp,
    path: &str,
    token: &str,
) -> RunningService<rmcp::RoleClient, ()> {
    let config = StreamableHttpClientTransportConfig::with_uri(app.url(path)).auth_header(token);
    let transport = StreamableHttpClientTransport::from_config(config);
    ().serve(transport).await.expect("MCP initialize")
}

fn names<T>(items: &[T], name: impl Fn(&T) -> String) -> Vec<String> {
    let mut names: Vec<String> = items.iter().map(name).collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_virtual_server_serves_its_active_tools_prompts_and_resources() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        let token = app.admin_token().await;
        let alpha_id = seed(&app, &token, "http://127.0.0.1:9").await;

        for path in [
            "/servers/alpha/mcp".to_owned(),
            format!("/servers/{alpha_id}/mcp"),
        ] {
            let client = connect(&app, &path, &token).await;
            let tools = client.list_all_tools().await.unwrap();
            assert_eq!(names(&tools, |t| t.name.to_string()), ["echo"], "{path}");
            let echo = serde_json::to_value(&tools[0]).unwrap();
            assert_eq!(echo["description"], "the echo tool");
            assert_eq!(echo["inputSchema"]["properties"]["q"]["type"], "string");
            assert_eq!(echo["annotations"]["readOnlyHint"], true);

            let prompts = client.list_all_prompts().await.unwrap();
            assert_eq!(names(&prompts, |p| p.name.clone()), ["greet"]);
            let args = serde_json::to_value(&prompts[0].arguments).unwrap();
            assert_eq!(
                args[0],
                json!({"name": "who", "description": "whom", "required": true})
            );

            let resources = client.list_all_resources().await.unwrap();
            assert_eq!(
                names(&resources, |r| r.uri.clone()),
                ["docs://logo", "docs://readme"]
            );
            let templates = client.list_all_resource_templates().await.unwrap();
            assert_eq!(templates[0].uri_template, "docs://pages/{n}");
            client.cancel().await.unwrap();
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn prompts_render_with_their_arguments_and_resources_read_as_stored() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        let token = app.admin_token().await;
        seed(&app, &token, "http://127.0.0.1:9").await;
        let client = connect(&app, "/servers/alpha/mcp", &token).await;

        let params = |args: Value| -> GetPromptRequestParams {
            serde_json::from_value(json!({"name": "greet", "arguments": args})).unwrap()
        };
        let got = client
            .get_prompt(params(json!({"who": "Ada", "mood": "well"})))
            .await
            .unwrap();
        let message = serde_json::to_value(&got.messages[0]).unwrap();
        assert_eq!(message["role"], "user");
        assert_eq!(message["content"]["text"], "Hello Ada, you look well!");
        let missing = client
            .get_prompt(params(json!({"mood": "well"})))
            .await
            .unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("missing required argument(s): who"),
            "{missing}"
        );

        let read = |uri: &str| -> ReadResourceRequestParams {
            serde_json::from_value(json!({"uri": uri})).unwrap()
        };
        let text = client.read_resource(read("docs://readme")).await.unwrap();
        match &text.contents[0] {
            ResourceContents::TextResourceContents {
                text, mime_type, ..
            } => {
                assert_eq!(text, "# Read me");
                assert_eq!(mime_type.as_deref(), Some("text/markdown"));
            }
            other => panic!("text expected, got {other:?}"),
        }
        let blob = client.read_resource(read("docs://logo")).await.unwrap();
        match &blob.contents[0] {
            ResourceContents::BlobResourceContents {
                blob, mime_type, ..
            } => {
                assert_eq!(blob, "iVBORw0KGgo=");
                assert_eq!(mime_type.as_deref(), Some("image/png"));
            }
            other => panic!("blob expected, got {other:?}"),
        }
        client.cancel().await.unwrap();
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_gateways_own_endpoint_offers_every_active_entity() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        let token = app.admin_token().await;
        seed(&app, &token, "http://127.0.0.1:9").await;
        let client = connect(&app, "/mcp", &token).await;
        let tools = client.list_all_tools().await.unwrap();
        assert_eq!(names(&tools, |t| t.name.to_string()), ["echo", "hidden"]);
        assert_eq!(client.list_all_prompts().await.unwrap().len(), 1);
        client.cancel().await.unwrap();
        app.stop().await;
    })
    .await;
}

/// An `initialize` POST, as any MCP client sends first.
pub fn initialize_body() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}})
}

pub async fn post_initialize(
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = app
        .client()
        .post(app.url(path))
        .header("accept", "application/json, text/event-stream")
        .json(&initialize_body());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_door_answers_401_404_and_403_before_any_mcp() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        let token = app.admin_token().await;
        seed(&app, &token, "http://127.0.0.1:9").await;
        let bearer = format!("Bearer {token}");

        let anonymous = post_initialize(&app, "/servers/alpha/mcp", &[]).await;
        assert_eq!(anonymous.status(), 401);
        assert_eq!(
            anonymous.headers()["www-authenticate"],
            r#"Bearer realm="mcpgateway""#
        );
        let wrong = post_initialize(&app, "/mcp", &[("authorization", "Bearer mcpg_nope")]).await;
        assert_eq!(wrong.status(), 401);

        let auth = ("authorization", bearer.as_str());
        for path in ["/servers/beta/mcp", "/servers/nobody/mcp"] {
            let response = post_initialize(&app, path, &[auth]).await;
            assert_eq!(response.status(), 404, "{path}");
        }
        let foreign = post_initialize(
            &app,
            "/servers/alpha/mcp",
            &[auth, ("origin", "http://evil.example")],
        )
        .await;
        assert_eq!(foreign.status(), 403);
        let ours = app.base.clone();
        let same = post_initialize(&app, "/servers/alpha/mcp", &[auth, ("origin", &ours)]).await;
        assert_eq!(same.status(), 200);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn each_tool_called_through_mcp_reaches_its_upstream_with_exactly_the_stored_credentials() {
    on_each_backend(|db| async move {
        let up = crate::common::upstream::Upstream::start().await;
        let app = TestApp::spawn_with(db, |s| s.allow_private_networks = true).await;
        let token = app.admin_token().await;
        let schema = json!({"type": "object", "properties": {"q": {"type": "string"}},
                            "required": ["q"]});
        let kinds = [
            (
                "basic",
                json!({"type": "basic", "username": "ann", "password": "pw-basic-1"}),
            ),
            ("bearer", json!({"type": "bearer", "token": "tok-bearer-2"})),
            (
                "headers",
                json!({"type": "authheaders", "headers": {"X-Api-Key": "key-3"}}),
            ),
        ];
        for (kind, auth) in &kinds {
            let tool = json!({"name": format!("cred-{kind}"), "url": up.url(&format!("/{kind}")),
                              "request_type": "POST", "input_schema": schema, "auth": auth});
            create(&app, &token, "/tools", tool).await;
        }
        let failing =
            json!({"name": "cred-refused", "url": up.url("/status/503"), "request_type": "GET"});
        create(&app, &token, "/tools", failing).await;
        let all = ["cred-basic", "cred-bearer", "cred-headers", "cred-refused"];
        create(
            &app,
            &token,
            "/servers",
            json!({"name": "creds", "tool_ids": all}),
        )
        .await;

        let client = connect(&app, "/servers/creds/mcp", &token).await;
        let call = |name: &str, args: Value| -> rmcp::model::CallToolRequestParams {
            serde_json::from_value(json!({"name": name, "arguments": args})).unwrap()
        };
        for (kind, _) in &kinds {
            let result = client
                .call_tool(call(&format!("cred-{kind}"), json!({"q": kind})))
                .await
                .unwrap();
            assert_ne!(result.is_error, Some(true), "{kind}: {result:?}");
            let seen = up.seen(&format!("/{kind}"));
            assert_eq!(seen.len(), 1, "{kind}: one upstream request");
            assert!(
                seen[0].body.contains(kind),
                "{kind}: the arguments are sent"
            );
        }
        let header = |path: &str, name: &str| up.seen(path)[0].headers.get(name).cloned();
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode("ann:pw-basic-1");
        assert_eq!(
            header("/basic", "authorization"),
            Some(format!("Basic {basic}"))
        );
        assert_eq!(
            header("/bearer", "authorization"),
            Some("Bearer tok-bearer-2".into())
        );
        assert_eq!(header("/headers", "x-api-key"), Some("key-3".into()));
        assert_eq!(header("/headers", "authorization"), None);

        // Arguments that break the schema never reach the upstream: a tool error names them.
        let bad = client
            .call_tool(call("cred-bearer", json!({"q": 7})))
            .await
            .unwrap();
        assert_eq!(bad.is_error, Some(true));
        assert!(
            serde_json::to_string(&bad.content).unwrap().contains("/q"),
            "{bad:?}"
        );
        assert_eq!(up.seen("/bearer").len(), 1);
        // An upstream failure is a tool error the model can read, not a protocol error.
        let refused = client
            .call_tool(call("cred-refused", json!({})))
            .await
            .unwrap();
        assert_eq!(refused.is_error, Some(true));
        // A tool the server does not link is unknown here, though the gateway has it.
        create(
            &app,
            &token,
            "/tools",
            json!({"name": "elsewhere", "url": up.url("/x")}),
        )
        .await;
        let unknown = client
            .call_tool(call("elsewhere", json!({})))
            .await
            .unwrap_err();
        assert!(unknown.to_string().contains("unknown tool"), "{unknown}");
        assert!(up.seen("/x").is_empty());
        client.cancel().await.unwrap();
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_token_scoped_to_a_server_reaches_its_mcp_endpoint_and_nothing_else() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        let admin = app.admin_token().await;
        seed(&app, &admin, "http://127.0.0.1:9").await;
        create(&app, &admin, "/servers", json!({"name": "gamma"})).await;
        let scope = ["ALPHA".to_owned()];
        let (_, scoped) = server::auth::create_scoped_api_token(
            &app.store,
            crate::common::ADMIN_EMAIL,
            "mcp-client",
            None,
            Some(&scope[..]),
        )
        .await
        .unwrap();
        let bearer = format!("Bearer {scoped}");
        let auth = ("authorization", bearer.as_str());

        let ok = post_initialize(&app, "/servers/alpha/mcp", &[auth]).await;
        assert_eq!(ok.status(), 200);
        let client = connect(&app, "/servers/alpha/mcp", &scoped).await;
        assert_eq!(client.list_all_tools().await.unwrap().len(), 1);
        client.cancel().await.unwrap();

        let other = post_initialize(&app, "/servers/gamma/mcp", &[auth]).await;
        assert_eq!(other.status(), 403, "another server's endpoint");
        let gateway = post_initialize(&app, "/mcp", &[auth]).await;
        assert_eq!(gateway.status(), 403, "the gateway's own endpoint");
        for path in ["/tools", "/servers", "/admin/export", "/auth/me"] {
            let response = app
                .client()
                .get(app.url(path))
                .bearer_auth(&scoped)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 403, "{path}");
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn token_create_with_server_makes_a_scoped_token_and_refuses_unknown_servers() {
    let app = TestApp::spawn(crate::common::TestDb::sqlite()).await;
    let admin = app.admin_token().await;
    seed(&app, &admin, "http://127.0.0.1:9").await;
    let create = |servers: &[&str]| {
        let mut cmd = crate::common::harness::cli(&app.db);
        cmd.args([
            "token",
            "create",
            "--email",
            crate::common::ADMIN_EMAIL,
            "--name",
            "scoped",
        ]);
        for s in servers {
            cmd.args(["--server", s]);
        }
        cmd.output().unwrap()
    };
    let refused = create(&["alpha", "nobody", "ghost"]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("no server named nobody, ghost"), "{why}");

    let made = create(&["alpha"]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let stdout = String::from_utf8(made.stdout).unwrap();
    let token = stdout.lines().last().unwrap().trim().to_owned();
    let bearer = format!("Bearer {token}");
    let ok = post_initialize(&app, "/servers/alpha/mcp", &[("authorization", &bearer)]).await;
    assert_eq!(ok.status(), 200);
    let rest = app
        .client()
        .get(app.url("/tools"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 403);
    app.stop().await;
}

/// `completion/complete`: a prompt argument's `enum` values that start with what was
/// typed (any case); nothing for an argument without one; an unknown prompt, or one
/// outside the server, is invalid params.
#[tokio::test]
async fn completion_offers_a_prompt_arguments_enum_values_by_prefix() {
    let app = TestApp::spawn(crate::common::TestDb::sqlite()).await;
    let token = app.admin_token().await;
    seed(&app, &token, "http://127.0.0.1:9").await;
    let pick = json!({"name": "pick", "template": "{{ city }} {{ note }}",
        "input_schema": {"type": "object", "properties": {
            "city": {"type": "string", "enum": ["Paris", "park", "Berlin", "party"]},
            "note": {"type": "string"}}}});
    create(&app, &token, "/prompts", pick).await;
    let client = connect(&app, "/mcp", &token).await;
    let complete = |prompt: &str, argument: &str, typed: &str| {
        let request = serde_json::from_value(json!({
            "ref": {"type": "ref/prompt", "name": prompt},
            "argument": {"name": argument, "value": typed}}))
        .unwrap();
        client.peer().complete(request)
    };
    let got = complete("pick", "city", "PA").await.unwrap();
    assert_eq!(got.completion.values, ["Paris", "park", "party"]);
    assert_eq!(
        (got.completion.total, got.completion.has_more),
        (Some(3), Some(false))
    );
    let got = complete("pick", "note", "x").await.unwrap();
    assert!(got.completion.values.is_empty());
    let unknown = complete("nope", "city", "").await.unwrap_err();
    assert!(
        unknown.to_string().contains("no prompt \"nope\""),
        "{unknown}"
    );
    client.cancel().await.unwrap();
    // alpha links `greet` only.
    let alpha = connect(&app, "/servers/alpha/mcp", &token).await;
    let request = serde_json::from_value(json!({
        "ref": {"type": "ref/prompt", "name": "pick"},
        "argument": {"name": "city", "value": ""}}))
    .unwrap();
    assert!(alpha.peer().complete(request).await.is_err());
    alpha.cancel().await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn sessions_beyond_the_cap_get_429_and_the_held_ones_keep_working() {
    let app = TestApp::spawn_with(crate::common::TestDb::sqlite(), |s| {
        s.mcp_sessions = 2;
    })
    .await;
    let token = app.admin_token().await;
    seed(&app, &token, "http://127.0.0.1:9").await;
    let bearer = format!("Bearer {token}");
    let auth = [("authorization", bearer.as_str())];
    let first = connect(&app, "/servers/alpha/mcp", &token).await;
    let second = connect(&app, "/mcp", &token).await;

    let refused = post_initialize(&app, "/servers/alpha/mcp", &auth).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_requests", "{body}");
    // The sessions held go on: the cap refuses only what would open one more.
    assert!(!first.list_all_tools().await.unwrap().is_empty());
    assert!(!second.list_all_tools().await.unwrap().is_empty());

    // Ending one (DELETE of the session) makes room at once.
    first.cancel().await.unwrap();
    let mut status = 429;
    for _ in 0..50 {
        status = post_initialize(&app, "/servers/alpha/mcp", &auth)
            .await
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
    app.stop().await;
}
