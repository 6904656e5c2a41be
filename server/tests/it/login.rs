//! Signing in and out of the UI, session cookies and CSRF, on every backend.

use crate::common::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp, on_each_backend};

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_cookie_that_opens_the_ui() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        let response = app
            .client()
            .post(app.url("/auth/login"))
            .form(&[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        assert_eq!(response.headers()["location"], "/ui");
        let set_cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(set_cookie.starts_with("mcpgw_session="), "{set_cookie}");
        assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
        assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");

        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        let page = app
            .client()
            .get(app.url("/ui"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        for tab in [
            "Tools",
            "Gateways",
            "Servers",
            "Prompts",
            "Resources",
            "Roots",
        ] {
            assert!(
                html.contains(&format!(">{tab}</a>")),
                "tab {tab} is rendered: {html}"
            );
        }
        assert!(html.contains(ADMIN_EMAIL), "the signed-in user is shown");
        assert!(
            html.contains(app.db.backend),
            "the dashboard names the database"
        );
        let audit = app.store.audit_entries(Some("login"), 10).await.unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].actor, ADMIN_EMAIL);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_wrong_password_or_unknown_user_is_refused_without_a_cookie() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        for (email, password) in [
            (ADMIN_EMAIL, "wrong-password"),
            ("nobody@example.com", ADMIN_PASSWORD),
        ] {
            let response = app
                .client()
                .post(app.url("/auth/login"))
                .form(&[("email", email), ("password", password)])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 303);
            assert_eq!(response.headers()["location"], "/login?error=invalid");
            assert!(response.headers().get("set-cookie").is_none());
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn cookie_writes_need_a_matching_origin_and_logout_ends_the_session() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        let cookie = format!("mcpgw_session={}", app.session_cookie().await);
        let client = app.client();

        let no_origin = client
            .post(app.url("/auth/logout"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(
            no_origin.status(),
            403,
            "a cookie write without Origin is refused"
        );
        let foreign = client
            .post(app.url("/auth/logout"))
            .header("cookie", &cookie)
            .header("origin", "http://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(
            foreign.status(),
            403,
            "a cookie write from another origin is refused"
        );

        let me = client
            .get(app.url("/auth/me"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200, "the session survived the refused writes");

        let logout = client
            .post(app.url("/auth/logout"))
            .header("cookie", &cookie)
            .header("origin", &app.base)
            .send()
            .await
            .unwrap();
        assert_eq!(logout.status(), 303);
        assert_eq!(logout.headers()["location"], "/login");

        let after = client
            .get(app.url("/auth/me"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(after.status(), 401, "the session is gone after logout");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn bearer_writes_need_no_origin() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        let token = app.admin_token().await;
        let response = app
            .client()
            .post(app.url("/auth/logout"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            303,
            "CSRF rules apply to cookies, not tokens"
        );
        app.stop().await;
    })
    .await;
}
