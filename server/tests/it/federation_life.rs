//! Federation's lifecycle, health and replicas (issue #17): a peer gateway's health in
//! the REST entity, `/metrics` and the audit log; the lease that lets one replica at a
//! time check a gateway.

use std::time::Duration;

use app::{
    entities::Gateway,
    federation::{GatewayHealth, PeerStatus},
};
use serde_json::{Value, json};
use server::{
    federation::{
        health::{self, Contact, Counts},
        lease,
    },
    invoke::metrics::Metrics,
};

use crate::common::{TestApp, harness::Api, on_each_backend};

/// A gateway stored through REST; inactive, so that no replica contacts it by itself.
async fn quiet_gateway(api: &Api, name: &str) -> Gateway {
    let (status, body) = api
        .send(api.post("/gateways").json(&json!({
            "name": name, "url": "http://127.0.0.1:9/mcp", "transport": "STREAMABLEHTTP",
            "is_active": false, "auth": {"type": "bearer", "token": "peer-token-not-shown"},
        })))
        .await;
    assert_eq!(status, 201, "{body}");
    serde_json::from_value(body).unwrap()
}

async fn health_over_rest(api: &Api, id: uuid::Uuid) -> GatewayHealth {
    let (status, body) = api.send(api.get(&format!("/gateways/{id}"))).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body["health"].clone()).expect("a gateway shows its health")
}

#[tokio::test]
async fn a_gateways_health_shows_in_rest_metrics_and_one_audit_row_per_change() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        let api = Api::new(&app).await;
        let gateway = quiet_gateway(&api, "peer-health").await;
        let id = gateway.id.unwrap();
        assert_eq!(health_over_rest(&api, id).await, GatewayHealth::default(), "unknown until contacted");

        let metrics = Metrics::default();
        let found = Counts { tools: 12, prompts: 1, resources: 0 };
        let up = health::record(&app.store, &metrics, &gateway, Contact::Answered(Some(found)))
            .await
            .unwrap();
        assert_eq!(up.status, PeerStatus::Reachable);
        assert_eq!(up.describe(), "connected, 12 tools, 1 prompt discovered");
        let shown = health_over_rest(&api, id).await;
        assert_eq!(shown, up);
        assert!(shown.last_seen.is_some() && shown.checked_at.is_some());

        // A ping keeps the discovery's counts; a second answer is no change.
        let pinged = health::record(&app.store, &metrics, &gateway, Contact::Answered(None))
            .await
            .unwrap();
        let refused = Contact::Failed(PeerStatus::Unreachable, "connection refused".into());
        let down = health::record(&app.store, &metrics, &gateway, refused).await.unwrap();
        assert_eq!((down.tools, down.last_seen), (12, pinged.last_seen), "what it last found stays");
        assert_eq!(down.last_error.as_deref(), Some("connection refused"));

        let (status, list) = api
            .send(api.get("/gateways?include_inactive=true"))
            .await;
        assert_eq!(status, 200);
        let listed = &list["items"][0];
        assert_eq!(listed["health"]["status"], "unreachable", "{list}");
        assert_eq!(listed["health"]["last_error"], "connection refused");

        let audit = app.store.audit_entries(Some(health::STATUS_ACTION), 10).await.unwrap();
        let changes: Vec<(Value, Value)> = audit
            .iter()
            .rev()
            .map(|e| (e.details.0["from"].clone(), e.details.0["to"].clone()))
            .collect();
        assert_eq!(
            changes,
            [(json!("unknown"), json!("reachable")), (json!("reachable"), json!("unreachable"))],
            "one row per change, none for the repeated answer"
        );
        assert!(audit.iter().all(|e| e.target_name.as_deref() == Some("peer-health")));
        assert!(metrics.render().contains(
            r#"mcpgateway_gateway_status_changes_total{gateway="peer-health",status="unreachable"} 1"#
        ));

        let text = api
            .get("/metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains(r#"mcpgateway_gateway_up{gateway="peer-health"} 0"#), "{text}");
        assert!(
            text.contains(r#"mcpgateway_gateway_status{gateway="peer-health",status="unreachable"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"mcpgateway_gateway_discovered{gateway="peer-health",kind="tools"} 12"#),
            "{text}"
        );
        assert!(!text.contains("peer-token-not-shown"));

        // Deleting the gateway takes its health (and lease) with it.
        let (status, _) = api
            .send(
                api.client
                    .delete(format!("{}/gateways/{id}", api.base))
                    .bearer_auth(&api.token),
            ).await;
        assert_eq!(status, 204);
        assert!(app.store.gateway_healths(&[id]).await.unwrap().is_empty());
        assert!(!app.store.acquire_lease(id, "a", Duration::from_secs(5)).await.unwrap());
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_lease_has_one_owner_until_it_expires_or_is_released() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        let api = Api::new(&app).await;
        let id = quiet_gateway(&api, "peer-lease").await.id.unwrap();
        let store = &app.store;
        let ttl = lease::ttl(Duration::from_secs(1));
        assert_eq!(ttl, Duration::from_secs(3));

        assert!(store.acquire_lease(id, "replica-a", ttl).await.unwrap());
        assert!(
            !store.acquire_lease(id, "replica-b", ttl).await.unwrap(),
            "held by a"
        );
        assert!(
            store.acquire_lease(id, "replica-a", ttl).await.unwrap(),
            "a renews"
        );
        assert_eq!(
            store.lease_owner(id).await.unwrap().as_deref(),
            Some("replica-a")
        );

        // Both ask at once, many times: exactly one holds it each time.
        let short = Duration::from_millis(300);
        store.release_lease(id, "replica-a").await.unwrap();
        for _ in 0..5 {
            let (a, b) = tokio::join!(
                store.acquire_lease(id, "replica-a", short),
                store.acquire_lease(id, "replica-b", short)
            );
            assert!(a.unwrap() ^ b.unwrap(), "exactly one owner");
            let owner = store.lease_owner(id).await.unwrap().unwrap();
            tokio::time::sleep(short + Duration::from_millis(50)).await;
            let other = if owner == "replica-a" {
                "replica-b"
            } else {
                "replica-a"
            };
            assert!(
                store.acquire_lease(id, other, short).await.unwrap(),
                "taken after expiry"
            );
            store.release_lease(id, other).await.unwrap();
        }
        assert_eq!(store.lease_owner(id).await.unwrap(), None, "released");
        app.stop().await;
    })
    .await;
}
