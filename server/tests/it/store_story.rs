//! One story over the store, run on SQLite and on PostgreSQL.

use crate::common::on_each_backend;
use chrono::Duration;
use server::{
    auth::{self, AuthMethod},
    store::{audit::NewAuditEntry, now},
};

#[tokio::test]
async fn users_tokens_sessions_and_audit_on_every_backend() {
    on_each_backend(|db| async move {
        let store = db.store().await;
        let backend = db.backend;
        assert_eq!(store.backend_name(), backend);
        assert!(store.is_ready().await, "{backend}: migrations applied");

        // Users: emails are case-insensitive and unique.
        let hash = auth::password::hash("a-long-password").await.unwrap();
        let user = store
            .insert_user("Ops@Example.com", &hash, true)
            .await
            .unwrap();
        assert_eq!(user.email, "ops@example.com");
        let found = store
            .user_by_email("OPS@example.COM")
            .await
            .unwrap()
            .expect("found by email");
        assert_eq!(found.id, user.id);
        let duplicate = store
            .insert_user("ops@example.com", &hash, false)
            .await
            .unwrap_err();
        assert!(
            matches!(duplicate, sqlx::Error::Database(ref d) if d.is_unique_violation()),
            "{backend}: {duplicate}"
        );
        assert_eq!(store.count_users().await.unwrap(), 1);

        // Tokens: only the hash is stored; expired and revoked ones stop working.
        let (token, plaintext) = auth::create_api_token(&store, "ops@example.com", "ci", None)
            .await
            .unwrap();
        let principal = auth::principal_for_token(&store, &plaintext)
            .await
            .unwrap()
            .expect("valid token");
        assert_eq!(principal.email, "ops@example.com");
        assert_eq!(principal.via, AuthMethod::Bearer);
        assert!(
            store.token_by_hash(&plaintext).await.unwrap().is_none(),
            "{backend}: plaintext is not stored"
        );
        let again = auth::create_api_token(&store, "ops@example.com", "ci", None)
            .await
            .unwrap_err();
        assert!(
            again.to_string().contains("already has a token named"),
            "{again}"
        );

        let expired_at = Some(now() - Duration::minutes(1));
        let (_, expired) = auth::create_api_token(&store, "ops@example.com", "old", expired_at)
            .await
            .unwrap();
        assert!(
            auth::principal_for_token(&store, &expired)
                .await
                .unwrap()
                .is_none(),
            "{backend}: expired"
        );
        assert_eq!(store.count_active_tokens().await.unwrap(), 1);

        assert!(store.revoke_token(user.id, "ci").await.unwrap());
        assert!(
            !store.revoke_token(user.id, "ci").await.unwrap(),
            "{backend}: revoking twice finds nothing"
        );
        assert!(
            auth::principal_for_token(&store, &plaintext)
                .await
                .unwrap()
                .is_none(),
            "{backend}: revoked"
        );
        let listed = store.tokens_of(user.id).await.unwrap();
        assert_eq!(listed.len(), 2);
        assert!(
            listed
                .iter()
                .any(|t| t.id == token.id && t.revoked_at.is_some())
        );

        // Sessions: a login opens one; a wrong password does not.
        let ttl = Duration::hours(1);
        assert!(
            auth::login(&store, "ops@example.com", "nope", ttl)
                .await
                .unwrap()
                .is_none()
        );
        let (_, cookie) = auth::login(&store, "ops@example.com", "a-long-password", ttl)
            .await
            .unwrap()
            .expect("login");
        let session = auth::principal_for_session(&store, &cookie)
            .await
            .unwrap()
            .expect("live session");
        assert_eq!(session.via, AuthMethod::Session);
        store
            .delete_session(&auth::token_hash(&cookie))
            .await
            .unwrap();
        assert!(
            auth::principal_for_session(&store, &cookie)
                .await
                .unwrap()
                .is_none()
        );

        // Audit: newest first, filtered by action.
        for action in ["export", "import", "export"] {
            let entry = NewAuditEntry {
                actor: "ops@example.com",
                action,
                details: serde_json::json!({ "count": 3 }),
                ..Default::default()
            };
            store.record_audit(entry).await.unwrap();
        }
        let exports = store.audit_entries(Some("export"), 10).await.unwrap();
        assert_eq!(exports.len(), 2, "{backend}");
        assert_eq!(exports[0].details.0["count"], 3);
        assert_eq!(store.audit_entries(None, 10).await.unwrap().len(), 3);
        store.close().await;
    })
    .await;
}
