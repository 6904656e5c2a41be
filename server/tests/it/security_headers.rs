//! Security headers: a Content-Security-Policy whose nonce is the one on the page's
//! scripts (fresh per response), no framing, no sniffing, a referrer policy, and
//! `no-store` on everything but the static bundle; `Secure` cookies behind TLS.

use reqwest::header::HeaderMap;

use crate::common::{TestApp, TestDb, seed_store};

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

/// The `'nonce-…'` source of a policy's `script-src`.
fn script_nonce(policy: &str) -> String {
    let script_src = policy
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src "))
        .unwrap_or_else(|| panic!("no script-src in {policy}"));
    assert!(
        script_src.contains("'wasm-unsafe-eval'"),
        "the page instantiates its WebAssembly: {script_src}"
    );
    assert!(!script_src.contains("'unsafe-inline'"), "{script_src}");
    let nonce = script_src
        .split_whitespace()
        .find_map(|s| s.strip_prefix("'nonce-"))
        .unwrap_or_else(|| panic!("no nonce in {script_src}"));
    nonce.trim_end_matches('\'').to_owned()
}

fn assert_common(headers: &HeaderMap, what: &str) {
    let policy = header(headers, "content-security-policy");
    assert!(
        policy.contains("frame-ancestors 'none'"),
        "{what}: {policy}"
    );
    assert!(policy.contains("object-src 'none'"), "{what}: {policy}");
    assert_eq!(header(headers, "x-frame-options"), "DENY", "{what}");
    assert_eq!(
        header(headers, "x-content-type-options"),
        "nosniff",
        "{what}"
    );
    assert_eq!(header(headers, "referrer-policy"), "same-origin", "{what}");
}

#[tokio::test]
async fn pages_carry_a_csp_with_their_script_nonce_and_data_is_never_cached() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(db).await;
    seed_store(&app.store).await;
    let client = app.client();

    // The login page: every script on it carries the nonce of its own policy.
    let mut nonces = Vec::new();
    for _ in 0..2 {
        let page = client.get(app.url("/login")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert_common(page.headers(), "/login");
        let nonce = script_nonce(header(page.headers(), "content-security-policy"));
        let html = page.text().await.unwrap();
        let scripts = html.matches("<script").count();
        assert!(scripts >= 1, "the hydration script is on the page");
        assert_eq!(
            html.matches(&format!("<script nonce=\"{nonce}\"")).count()
                + html
                    .matches(&format!("<script type=\"module\" nonce=\"{nonce}\""))
                    .count(),
            scripts,
            "every script carries the nonce {nonce}: {html}"
        );
        nonces.push(nonce);
    }
    assert_ne!(nonces[0], nonces[1], "a fresh nonce per response");

    // A signed-in page rendered with its data (and its resource scripts).
    let cookie = app.session_cookie().await;
    let page = client
        .get(app.url("/ui/tools"))
        .header("cookie", format!("mcpgw_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_common(page.headers(), "/ui/tools");
    assert_eq!(header(page.headers(), "cache-control"), "no-store");
    let nonce = script_nonce(header(page.headers(), "content-security-policy"));
    let html = page.text().await.unwrap();
    let with_nonce = html.matches(&format!("nonce=\"{nonce}\"")).count();
    assert!(
        with_nonce >= html.matches("<script").count(),
        "every script on a signed-in page carries the nonce"
    );

    // API answers, exports and errors: the same headers, never cached.
    let token = app.admin_token().await;
    for path in ["/auth/me", "/tools", "/admin/export", "/nowhere"] {
        let response = client
            .get(app.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_common(response.headers(), path);
        assert_eq!(
            header(response.headers(), "cache-control"),
            "no-store",
            "{path}"
        );
    }
    let refused = client.get(app.url("/tools")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_common(refused.headers(), "401");

    // The static bundle stays cacheable.
    let css = client
        .get(app.url("/pkg/mcpgateway.css"))
        .send()
        .await
        .unwrap();
    assert_common(css.headers(), "css");
    assert_ne!(
        css.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
    app.stop().await;
}

#[tokio::test]
async fn the_session_cookie_is_secure_when_the_gateway_is_served_over_https() {
    let app = TestApp::spawn_with(TestDb::sqlite(), |s| {
        s.public_origin = Some("https://gateway.example.com".into());
    })
    .await;
    let response = app
        .client()
        .post(app.url("/auth/login"))
        .form(&[
            ("email", crate::common::ADMIN_EMAIL),
            ("password", crate::common::ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let cookie = header(response.headers(), "set-cookie");
    assert!(cookie.contains("Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    app.stop().await;
}
