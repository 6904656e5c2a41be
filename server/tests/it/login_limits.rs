//! Sign-in rate limits on failed attempts: per client address and per account from one
//! address, 429 with `Retry-After` and a JSON error; successes never count, the owner
//! signs in from elsewhere, and `X-Forwarded-For` counts only from a trusted proxy.

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
async fn guesses_lock_one_address_out_of_one_account_and_the_owner_still_signs_in() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        for (email, password) in [(OTHER_EMAIL, OTHER_PASSWORD), (THIRD_EMAIL, THIRD_PASSWORD)] {
            let hash = server::auth::password::hash(password).await.unwrap();
            app.store.insert_user(email, &hash, false).await.unwrap();
        }

        // Guessing the admin's password from one address: five refusals, then 429.
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
            message.contains("for this account from this address"),
            "{message}"
        );
        assert!(!message.contains("wrong-guess"));
        // Refused before the password is checked: the right one is refused too, from there…
        assert_eq!(
            outcome(&app, "127.0.0.1", ADMIN_EMAIL, ADMIN_PASSWORD).await,
            "limited"
        );
        // …but the admin, from anywhere else, signs in.
        assert_eq!(
            outcome(&app, "127.0.0.3", ADMIN_EMAIL, ADMIN_PASSWORD).await,
            "in"
        );
        // Another account from the guessing address is not blocked by that limit.
        assert_eq!(
            outcome(&app, "127.0.0.1", OTHER_EMAIL, OTHER_PASSWORD).await,
            "in"
        );

        // Successes do not count: a dozen sign-ins in a minute from one address all work.
        for n in 1..=12 {
            let got = outcome(&app, "127.0.0.2", THIRD_EMAIL, THIRD_PASSWORD).await;
            assert_eq!(got, "in", "sign-in {n}");
        }

        // One address guessing at many accounts: its limit (10 failures a minute) stops it.
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
        // …while other addresses sign in as before.
        assert_eq!(
            outcome(&app, "127.0.1.2", OTHER_EMAIL, OTHER_PASSWORD).await,
            "in"
        );
        let audit = app.store.audit_entries(Some("login"), 100).await.unwrap();
        assert_eq!(audit.len(), 15, "only the real sign-ins are audited");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn parallel_guesses_cannot_slip_past_the_limit() {
    let app = TestApp::spawn(crate::common::TestDb::sqlite()).await;
    let outcomes = futures_util::future::join_all(
        (0..20).map(|_| outcome(&app, "127.0.2.1", ADMIN_EMAIL, "wrong-guess")),
    )
    .await;
    let refused = outcomes.iter().filter(|o| **o == "refused").count();
    assert_eq!(refused, 5, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| **o == "limited").count(), 15);
    app.stop().await;
}

/// A sign-in through a reverse proxy at `proxy` for a client at `forwarded_for`.
async fn via_proxy(
    app: &TestApp,
    proxy: &str,
    forwarded_for: &str,
    password: &str,
) -> reqwest::Response {
    client_from(proxy)
        .post(app.url("/auth/login"))
        .header("x-forwarded-for", forwarded_for)
        .header("x-forwarded-proto", "https")
        .form(&[("email", ADMIN_EMAIL), ("password", password)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_client_address_comes_from_x_forwarded_for_only_behind_a_trusted_proxy() {
    let app = TestApp::spawn_with(crate::common::TestDb::sqlite(), |s| {
        s.trusted_proxies = serde_json::from_value(serde_json::json!(["127.0.3.1"])).unwrap();
    })
    .await;
    // Behind the trusted proxy, each client is limited on its own address.
    for _ in 0..5 {
        let r = via_proxy(&app, "127.0.3.1", "203.0.113.7", "wrong-guess").await;
        assert_eq!(r.status(), 303);
    }
    let r = via_proxy(&app, "127.0.3.1", "203.0.113.7", ADMIN_PASSWORD).await;
    assert_eq!(r.status(), 429, "the guessing client is limited");
    let r = via_proxy(&app, "127.0.3.1", "203.0.113.8", ADMIN_PASSWORD).await;
    assert_eq!(
        r.status(),
        303,
        "another client through the same proxy signs in"
    );
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("Secure"),
        "the proxy says the client came over TLS: {cookie}"
    );

    // A peer that is not a trusted proxy cannot pick its address (or its scheme).
    for n in 0..5 {
        let r = via_proxy(&app, "127.0.3.2", &format!("198.51.100.{n}"), "wrong-guess").await;
        assert_eq!(r.status(), 303);
    }
    let r = via_proxy(&app, "127.0.3.2", "198.51.100.99", "wrong-guess").await;
    assert_eq!(r.status(), 429, "a forged X-Forwarded-For is ignored");
    let r = via_proxy(&app, "127.0.3.3", "203.0.113.7", ADMIN_PASSWORD).await;
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(!cookie.contains("Secure"), "{cookie}");
    app.stop().await;
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
