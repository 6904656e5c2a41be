//! REST CRUD of the six entity types, every refusal path, and credential handling, on
//! SQLite and PostgreSQL.

use crate::common::{SECRET, TestApp, on_each_backend};
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use server::{
    crypto::{Cipher, Plaintext},
    entities::{Entities, seed},
};

struct Api {
    app: TestApp,
    token: String,
}

impl Api {
    async fn new(app: TestApp) -> Api {
        let token = app.admin_token().await;
        Api { app, token }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self
            .app
            .client()
            .request(method, self.app.url(path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn create(&self, plural: &str, body: Value) -> Value {
        let (status, created) = self
            .call(Method::POST, &format!("/{plural}"), Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created
    }
}

fn pointers(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["pointer"].as_str().unwrap().to_owned())
        .collect()
}

/// A minimal valid record of each type, keyed by `n`.
fn sample(plural: &str, n: u32) -> Value {
    match plural {
        "tools" => {
            json!({"name": format!("tool-{n}"), "url": format!("https://api.example.com/{n}"), "tags": ["api"]})
        }
        "gateways" => {
            json!({"name": format!("gw-{n}"), "url": format!("https://peer{n}.example.com/mcp"), "transport": "streamablehttp"})
        }
        "servers" => json!({"name": format!("server-{n}"), "description": "composite"}),
        "prompts" => json!({"name": format!("prompt-{n}"), "template": "Hello {{ name }}"}),
        "resources" => {
            json!({"name": format!("res-{n}"), "uri": format!("docs://res/{n}"), "mime_type": "text/plain", "content": "hi"})
        }
        "roots" => json!({"uri": format!("file:///srv/root-{n}"), "name": format!("root {n}")}),
        _ => unreachable!(),
    }
}

const TYPES: [&str; 6] = [
    "tools",
    "gateways",
    "servers",
    "prompts",
    "resources",
    "roots",
];

#[tokio::test]
async fn every_type_can_be_created_read_listed_patched_and_deleted() {
    on_each_backend(|db| async move {
        let api = Api::new(TestApp::spawn(db).await).await;
        for plural in TYPES {
            let created = api.create(plural, sample(plural, 1)).await;
            let id = created["id"].as_str().unwrap().to_owned();
            api.create(plural, sample(plural, 2)).await;

            let (status, one) = api
                .call(Method::GET, &format!("/{plural}/{id}"), None)
                .await;
            assert_eq!(status, 200, "{plural}");
            // A gateway's `health` is live: its peer is contacted as soon as it is stored.
            let settled = |mut v: Value| {
                v.as_object_mut().map(|m| m.remove("health"));
                v
            };
            assert_eq!(
                settled(one),
                settled(created.clone()),
                "{plural}: read back as created"
            );

            let (_, page) = api
                .call(Method::GET, &format!("/{plural}?limit=1"), None)
                .await;
            assert_eq!(page["total"], 2, "{plural}");
            assert_eq!(
                page["items"].as_array().unwrap().len(),
                1,
                "{plural}: paged"
            );

            let (status, patched) = api
                .call(
                    Method::PATCH,
                    &format!("/{plural}/{id}"),
                    Some(json!({"is_active": false, "tags": ["changed"]})),
                )
                .await;
            assert_eq!(status, 200, "{plural}: {patched}");
            assert_eq!(patched["is_active"], false);
            assert_eq!(
                patched["tags"],
                json!([{"id": "changed", "label": "changed"}])
            );

            let (_, active) = api.call(Method::GET, &format!("/{plural}"), None).await;
            assert_eq!(active["total"], 1, "{plural}: inactive hidden by default");
            let (_, all) = api
                .call(
                    Method::GET,
                    &format!("/{plural}?include_inactive=true"),
                    None,
                )
                .await;
            assert_eq!(all["total"], 2, "{plural}");
            let (_, tagged) = api
                .call(
                    Method::GET,
                    &format!("/{plural}?tag=changed&include_inactive=true"),
                    None,
                )
                .await;
            assert_eq!(tagged["total"], 1, "{plural}: tag filter");

            let (status, _) = api
                .call(Method::DELETE, &format!("/{plural}/{id}"), None)
                .await;
            assert_eq!(status, StatusCode::NO_CONTENT, "{plural}");
            let (status, _) = api
                .call(Method::GET, &format!("/{plural}/{id}"), None)
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{plural}: gone");
        }
        let audit = api.app.store.audit_entries(None, 100).await.unwrap();
        for action in ["tool.create", "tool.update", "tool.delete", "root.delete"] {
            assert!(
                audit
                    .iter()
                    .any(|a| a.action == action && a.actor == crate::common::ADMIN_EMAIL),
                "{action} audited"
            );
        }
        api.app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn invalid_input_is_refused_with_every_error_and_writes_nothing() {
    on_each_backend(|db| async move {
        let api = Api::new(TestApp::spawn(db).await).await;
        let bad_tool = json!({"url": "ftp://files.example.com", "request_type": "FETCH", "tags": ["ok", "x"], "input_schema": {"type": "array"}});
        let (status, body) = api.call(Method::POST, "/tools", Some(bad_tool)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let found = pointers(&body);
        for expected in ["/request_type", "/name", "/url", "/input_schema/type", "/tags/1"] {
            assert!(found.contains(&expected.to_owned()), "{expected} in {found:?}");
        }
        let cases = [
            ("gateways", json!({"name": "g", "url": "https://x.example.com", "transport": "carrier-pigeon"}), "/transport"),
            ("roots", json!({"uri": "ftp://example.com/x", "name": "r"}), "/uri"),
            ("resources", json!({"name": "r", "uri": "docs://a", "mime_type": "not a type"}), "/mime_type"),
            ("prompts", json!({"name": "p"}), "/template"),
            ("servers", json!({"name": "s", "tool_ids": ["no-such-tool"]}), "/tool_ids/0"),
            ("tools", json!({"name": "t", "url": "https://a.example.com", "auth_type": "bearer", "auth_value": "plaintext!"}), "/auth_value"),
            ("tools", json!({"name": "t", "url": "https://a.example.com", "auth": {"type": "bearer", "token": ""}}), "/auth/token"),
        ];
        for (plural, body, pointer) in cases {
            let (status, answer) = api.call(Method::POST, &format!("/{plural}"), Some(body)).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{plural}: {answer}");
            assert!(pointers(&answer).contains(&pointer.to_owned()), "{plural}: {pointer} in {answer}");
        }
        let response = api.app.client().post(api.app.url("/tools")).bearer_auth(&api.token).body("{\"name\": ").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "truncated JSON");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["details"][0]["message"].as_str().unwrap().contains("line 1"), "{body}");
        for plural in TYPES {
            let (_, list) = api.call(Method::GET, &format!("/{plural}?include_inactive=true"), None).await;
            assert_eq!(list["total"], 0, "{plural}: no row written");
        }
        api.app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn duplicates_unknown_ids_and_tools_in_use_are_refused() {
    on_each_backend(|db| async move {
        let api = Api::new(TestApp::spawn(db).await).await;
        let tool = api.create("tools", sample("tools", 1)).await;
        let (status, body) = api
            .call(Method::POST, "/tools", Some(sample("tools", 1)))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("tool-1")
        );

        let missing = "00000000-0000-4000-8000-000000000000";
        for (method, path) in [
            (Method::GET, format!("/tools/{missing}")),
            (Method::PATCH, format!("/tools/{missing}")),
            (Method::DELETE, format!("/tools/{missing}")),
            (Method::GET, "/tools/not-a-uuid".into()),
        ] {
            let body = (method == Method::PATCH).then(|| json!({}));
            let (status, _) = api.call(method.clone(), &path, body).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
        }

        let prompt = api.create("prompts", sample("prompts", 1)).await;
        let server = api
            .create(
                "servers",
                json!({"name": "uses-tool", "tool_ids": ["tool-1"], "prompt_ids": ["prompt-1"]}),
            )
            .await;
        assert_eq!(server["tool_ids"], json!(["tool-1"]));
        let tool_path = format!("/tools/{}", tool["id"].as_str().unwrap());
        let (status, body) = api.call(Method::DELETE, &tool_path, None).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("uses-tool"),
            "{body}"
        );

        let (status, _) = api
            .call(Method::DELETE, &format!("{tool_path}?force=true"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (_, server) = api
            .call(
                Method::GET,
                &format!("/servers/{}", server["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(
            server["tool_ids"],
            json!([]),
            "a forced delete unlinks the tool"
        );
        assert_eq!(server["prompt_ids"], json!(["prompt-1"]));

        let (status, renamed) = api
            .call(
                Method::PATCH,
                &format!("/prompts/{}", prompt["id"].as_str().unwrap()),
                Some(json!({"name": "prompt-renamed"})),
            )
            .await;
        assert_eq!(status, 200, "{renamed}");
        let (_, server) = api
            .call(
                Method::GET,
                &format!("/servers/{}", server["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(
            server["prompt_ids"],
            json!(["prompt-renamed"]),
            "links follow a rename"
        );
        api.app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn credentials_are_encrypted_never_returned_and_kept_across_updates() {
    on_each_backend(|db| async move {
        let api = Api::new(TestApp::spawn(db).await).await;
        let cipher = Cipher::new(&SecretString::from(SECRET));
        let body = json!({"name": "secure", "url": "https://api.example.com", "auth": {"type": "bearer", "token": "tok-SENTINEL-123"}});
        let created = api.create("tools", body).await;
        assert_eq!(created["auth_type"], "bearer");
        assert_eq!(created["auth_set"], true);
        assert!(created.get("auth_value").is_none() && created.get("auth").is_none(), "{created}");
        assert!(!created.to_string().contains("SENTINEL"));

        let id = created["id"].as_str().unwrap();
        let stored = || async {
            let tool: app::entities::Tool = api.app.store.get_entity(id.parse().unwrap()).await.unwrap().unwrap();
            tool.auth_value
        };
        let blob = stored().await.expect("stored encrypted");
        assert!(!blob.contains("SENTINEL"));
        assert_eq!(cipher.decrypt(&blob).unwrap().0["Authorization"], "Bearer tok-SENTINEL-123");

        let (status, patched) = api.call(Method::PATCH, &format!("/tools/{id}"), Some(json!({"description": "d", "auth_value": null}))).await;
        assert_eq!(status, 200);
        assert_eq!(patched["auth_set"], true, "an update without the secret keeps it");
        assert_eq!(stored().await.as_deref(), Some(blob.as_str()));

        // An export block with a blob under this gateway's key is accepted as is; another key's is not.
        let own = cipher.encrypt(&Plaintext(serde_json::from_value(json!({"X-API-Key": "k"})).unwrap()));
        api.create("tools", json!({"name": "from-export", "url": "https://a.example.com", "auth_type": "authheaders", "auth_value": own})).await;
        let foreign = Cipher::new(&SecretString::from("some-other-gateway-secret-0123456789"))
            .encrypt(&Plaintext(serde_json::from_value(json!({"X-API-Key": "k"})).unwrap()));
        let (status, body) = api.call(Method::POST, "/tools", Some(json!({"name": "foreign", "url": "https://a.example.com", "auth_type": "authheaders", "auth_value": foreign}))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(pointers(&body), ["/auth_value"]);

        let (status, cleared) = api.call(Method::PATCH, &format!("/tools/{id}"), Some(json!({"auth_type": null}))).await;
        assert_eq!(status, 200);
        assert!(cleared.get("auth_set").is_none() && stored().await.is_none(), "{cleared}");
        api.app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn no_response_carries_a_seeded_secret() {
    on_each_backend(|db| async move {
        let api = Api::new(TestApp::spawn(db).await).await;
        let cipher = Cipher::new(&SecretString::from(SECRET));
        let service = Entities {
            store: &api.app.store,
            cipher: &cipher,
            actor: "test",
        };
        let report = seed::seed(&service).await.unwrap();
        assert_eq!(report.created, 49);
        let secrets: Vec<String> = (1..=15)
            .map(seed::seed_tool_secret)
            .chain(["seed-gw-alpha", "seed-gw-gamma"].map(seed::seed_gateway_secret))
            .collect();
        let mut bodies = Vec::new();
        // One sign-in: sign-in attempts are rate-limited per IP and per account.
        let cookie = format!("mcpgw_session={}", api.app.session_cookie().await);
        for plural in TYPES {
            let (_, list) = api
                .call(
                    Method::GET,
                    &format!("/{plural}?include_inactive=true"),
                    None,
                )
                .await;
            assert!(list["total"].as_i64().unwrap() > 0);
            for item in list["items"].as_array().unwrap() {
                let (_, one) = api
                    .call(
                        Method::GET,
                        &format!("/{plural}/{}", item["id"].as_str().unwrap()),
                        None,
                    )
                    .await;
                bodies.push(one.to_string());
                let page = api
                    .app
                    .client()
                    .get(
                        api.app
                            .url(&format!("/ui/{plural}/{}", item["id"].as_str().unwrap())),
                    )
                    .header("cookie", &cookie)
                    .send()
                    .await
                    .unwrap();
                bodies.push(page.text().await.unwrap());
            }
            bodies.push(list.to_string());
        }
        let audit = api.app.store.audit_entries(None, 1000).await.unwrap();
        bodies.push(serde_json::to_string(&audit).unwrap());
        for secret in &secrets {
            assert!(
                !bodies.iter().any(|b| b.contains(secret.as_str())),
                "{secret} leaked"
            );
        }
        api.app.stop().await;
    })
    .await;
}
