//! Sign-in rate limits: per client IP and per account, 429 with `Retry-After` and a
//! JSON error, and nobody else's sign-in is blocked by them.

use std::net::IpAddr;

use crate::common::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp, on_each_backend};

const OTHER_EMAIL: &str = "operator@example.com";
const OTHER_PASSWORD: &str = "operator-password-123";
const THIRD_EMAIL: &str = "auditor@example.com";
const THIRD_PASSWORD: &str = "auditor-password-456";

/// A client whose requests come from `ip` (any 127.x.y.z reaches the loopback server).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn login(app: &TestApp, ip: &str, email: &str, password: &str) -> reqwest::Response {
    client_from(ip)
        .post(app.url("/auth/login"))
        .form(&[("email", email), ("password", password)])
        .send()
        .await
        .unwrap()
}

/// Answers the sign-in form gives: 303 to /ui (in), 303 back to /login (refused), or 429.
async fn outcome(app: &TestApp, ip: &str, email: &str, password: &str) -> &'static str {
    let response = login(app, ip, email, password).await;
    match (
        response.status().as_u16(),
        response.headers().get("location"),
    ) {
        (303, Some(l)) if l == "/ui" => "in",
        (303, Some(l)) if l == "/login?error=invalid" => "refused",
        (429, _) => "limited",
        (status, location) => panic!("unexpected answer {status} {location:?}"),
    }
}

#[tokio::test]
async fn the_sixth_wrong_password_is_429_with_retry_after_and_others_still_sign_in() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        for (email, password) in [(OTHER_EMAIL, OTHER_PASSWORD), (THIRD_EMAIL, THIRD_PASSWORD)] {
            let hash = server::auth::password::hash(password).await.unwrap();
            app.store.insert_user(email, &hash, false).await.unwrap();
        }

        // Guessing the admin's password: five refusals, then 429 (the account's limit).
        for attempt in 1..=5 {
            let got = outcome(&app, "127.0.0.1", ADMIN_EMAIL, "wrong-guess").await;
            assert_eq!(got, "refused", "attempt {attempt}");
        }
        let sixth = login(&app, "127.0.0.1", ADMIN_EMAIL, "wrong-guess").await;
        assert_eq!(sixth.status(), 429);
        let retry: u64 = sixth.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
        assert!(sixth.headers().get("set-cookie").is_none());
        let body: serde_json::Value = sixth.json().await.unwrap();
        assert_eq!(body["error"]["code"], "too_many_requests");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("too many sign-in attempts for this account"),
            "{message}"
        );
        assert!(!message.contains("wrong-guess"));
        // Refused before the password is checked: the right one is refused too, from anywhere.
        for ip in ["127.0.0.1", "127.0.0.3"] {
            assert_eq!(
                outcome(&app, ip, ADMIN_EMAIL, ADMIN_PASSWORD).await,
                "limited"
            );
        }

        // Another account, from the same IP and from another: not blocked by that limit.
        assert_eq!(
            outcome(&app, "127.0.0.1", OTHER_EMAIL, OTHER_PASSWORD).await,
            "in"
        );
        assert_eq!(
            outcome(&app, "127.0.0.2", THIRD_EMAIL, THIRD_PASSWORD).await,
            "in"
        );

        // One IP guessing at many accounts: its limit (10 attempts a minute) stops it.
        for i in 0..10 {
            let email = format!("user{i}@example.com");
            assert_eq!(
                outcome(&app, "127.0.1.1", &email, "wrong-guess").await,
                "refused"
            );
        }
        let eleventh = login(&app, "127.0.1.1", "user10@example.com", "wrong-guess").await;
        assert_eq!(eleventh.status(), 429);
        assert!(eleventh.headers().contains_key("retry-after"));
        let body: serde_json::Value = eleventh.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("from this address"),
            "{body}"
        );
        // …while the accounts it did not reach and other IPs sign in as before.
        assert_eq!(
            outcome(&app, "127.0.1.2", OTHER_EMAIL, OTHER_PASSWORD).await,
            "in"
        );
        let audit = app.store.audit_entries(Some("login"), 10).await.unwrap();
        assert_eq!(audit.len(), 3, "only the real sign-ins are audited");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_limit_of_zero_lets_every_attempt_through() {
    let db = crate::common::TestDb::sqlite();
    let app = TestApp::spawn_with(db, |s| {
        s.login_attempts_per_ip = 0;
        s.login_attempts_per_account = 0;
    })
    .await;
    for _ in 0..8 {
        assert_eq!(
            outcome(&app, "127.0.0.1", ADMIN_EMAIL, "wrong-guess").await,
            "refused"
        );
    }
    assert_eq!(
        outcome(&app, "127.0.0.1", ADMIN_EMAIL, ADMIN_PASSWORD).await,
        "in"
    );
    app.stop().await;
}
