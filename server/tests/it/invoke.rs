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
    value.as_object().unwrap().clone()
}

fn basic(user: &str, password: &str) -> String {
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
