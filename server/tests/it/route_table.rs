//! Every route but the public ones refuses a caller without valid credentials, and
//! credentials are checked before routing (unknown paths answer 401 too).

use crate::common::{TestApp, TestDb};
use reqwest::Method;

/// The REST and auth routes, the UI's pages and server functions, and paths that do
/// not exist: all of them must answer 401 without credentials.
fn protected_routes() -> Vec<(Method, String)> {
    let mut paths: Vec<String> = [
        "/auth/me",
        "/auth/logout",
        "/",
        "/tools",
        "/admin/export",
        "/admin/export/selective",
        "/admin/export/preview",
        "/admin/import",
        "/admin/import/preview",
        "/admin/import/status/123",
        "/admin/import/status/123/events",
        "/admin/import/status/123/results",
        "/admin/import/123/cancel",
        "/admin/import/jobs",
        "/admin/audit",
        "/admin/verify",
        "/metrics",
        "/no/such/path",
        "/api/anything",
        "/healthz",
        "/pkg",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let public = |p: &str| {
        server::http::PUBLIC_PATHS.iter().any(|q| {
            if q.ends_with('/') {
                p.starts_with(q)
            } else {
                p == *q
            }
        })
    };
    paths.extend(server::http::ui_paths().into_iter().filter(|p| !public(p)));
    let mut routes = Vec::new();
    for path in paths {
        let concrete = path.replace(":kind", "tools").replace("{kind}", "tools");
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            routes.push((method, concrete.clone()));
        }
    }
    routes
}

#[tokio::test]
async fn every_protected_route_answers_401_without_credentials() {
    let app = TestApp::spawn(TestDb::sqlite()).await;
    let client = app.client();
    let routes = protected_routes();
    assert!(routes.len() > 60, "the walk covers the UI's routes too");
    for (method, path) in routes {
        let response = client
            .request(method.clone(), app.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{method} {path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{method} {path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn every_protected_route_answers_401_to_a_wrong_token_or_a_forged_cookie() {
    let app = TestApp::spawn(TestDb::sqlite()).await;
    let client = app.client();
    let forged = format!(
        "{}=mcpgw_forged-session-value",
        server::http::SESSION_COOKIE
    );
    for (method, path) in protected_routes() {
        let with_token = client
            .request(method.clone(), app.url(&path))
            .bearer_auth("mcpg_not-a-real-token")
            .send()
            .await
            .unwrap();
        assert_eq!(with_token.status(), 401, "token: {method} {path}");
        let with_cookie = client
            .request(method.clone(), app.url(&path))
            .header("cookie", &forged)
            .send()
            .await
            .unwrap();
        assert_eq!(with_cookie.status(), 401, "cookie: {method} {path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_or_malformed_token_is_401_and_a_valid_one_is_let_in() {
    let app = TestApp::spawn(TestDb::sqlite()).await;
    let client = app.client();
    for header in [
        "Bearer mcpg_not-a-real-token",
        "Bearer ",
        "Basic YWRtaW46YWRtaW4=",
        "mcpg_abc",
    ] {
        let response = client
            .get(app.url("/auth/me"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{header}");
    }
    let token = app.admin_token().await;
    let me: serde_json::Value = client
        .get(app.url("/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], crate::common::ADMIN_EMAIL);
    assert_eq!(me["auth"], "bearer");
    app.stop().await;
}

#[tokio::test]
async fn public_routes_answer_without_credentials() {
    let app = TestApp::spawn(TestDb::sqlite()).await;
    let client = app.client();
    for path in ["/health", "/ready", "/login"] {
        let response = client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let ready: serde_json::Value = client
        .get(app.url("/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    let login = client
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        login.contains(r#"action="/auth/login""#),
        "the login form renders on the server"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_browser_without_a_session_is_sent_to_the_login_page() {
    let app = TestApp::spawn(TestDb::sqlite()).await;
    let response = app
        .client()
        .get(app.url("/ui/tools"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/login");
    app.stop().await;
}
