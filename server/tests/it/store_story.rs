//! One story over the store, run on SQLite and on PostgreSQL.

use crate::common::on_each_backend;
use app::jobs::JobState;
use chrono::Duration;
use server::{
    auth::{self, AuthMethod},
    store::{
        audit::NewAuditEntry,
        jobs::{CHUNK, Finish, NewJob},
        now,
    },
    transfer::{input::Input, jobs::stored_file},
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

/// A job with `payload` to queue (`store` hashes nothing: the digest is made up).
fn new_job(id: uuid::Uuid, payload: &Input) -> NewJob<'_> {
    NewJob {
        id,
        created_by: "ops@example.com",
        options: serde_json::json!({}),
        file_name: Some("big.json"),
        file_sha256: "0",
        payload,
        sealed_source_secret: None,
    }
}

fn ended() -> Finish {
    Finish {
        status: JobState::Completed,
        processed: 0,
        total: 0,
        counts: Default::default(),
        report: None,
        errors: serde_json::json!([]),
        results: Vec::new(),
    }
}

#[tokio::test]
async fn a_job_file_is_stored_in_chunks_survives_a_restart_and_goes_at_the_end() {
    on_each_backend(|db| async move {
        let backend = db.backend;
        // Not a whole number of chunks; every byte depends on its offset.
        let bytes: Vec<u8> = (0..(2 * CHUNK + 12_345) as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &bytes).unwrap();
        let mapped = Input::map(&file).unwrap();
        let (big, small, other) = (
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4(),
        );
        let store = db.store().await;
        store.insert_job(new_job(big, &mapped)).await.unwrap();
        assert_eq!(store.job_chunk_count(big).await.unwrap(), 3, "{backend}");
        let tiny = Input::from(b"{}".to_vec());
        store.insert_job(new_job(small, &tiny)).await.unwrap();
        store.insert_job(new_job(other, &tiny)).await.unwrap();
        store.close().await;

        // Restarted between the POST and the run: the oldest job comes back byte for byte.
        let store = db.store().await;
        let job = store.claim_job("runner-a").await.unwrap().expect("queued");
        assert_eq!(job.id, big);
        let input = stored_file(&store, job.id).await.unwrap();
        assert!(
            input.bytes() == bytes.as_slice(),
            "{backend}: read back whole"
        );
        store.finish_job(big, &ended()).await.unwrap();
        assert_eq!(store.job_chunk_count(big).await.unwrap(), 0, "{backend}");

        // Cancelled while queued: its chunks go at once.
        assert_eq!(store.job_chunk_count(small).await.unwrap(), 1);
        let status = store.request_job_cancel(small, None).await.unwrap();
        assert_eq!(status, Some(JobState::Cancelled));
        assert_eq!(store.job_chunk_count(small).await.unwrap(), 0, "{backend}");

        // A one-chunk file comes back too; a runner that died leaves nothing behind.
        let job = store.claim_job("runner-a").await.unwrap().expect("queued");
        assert_eq!(job.id, other);
        let input = stored_file(&store, job.id).await.unwrap();
        assert_eq!(input.bytes(), b"{}");
        let again = uuid::Uuid::new_v4();
        store.insert_job(new_job(again, &tiny)).await.unwrap();
        let job = store.claim_job("runner-b").await.unwrap().expect("queued");
        assert_eq!(job.id, again);
        let errors = serde_json::json!([]);
        let failed = store
            .fail_abandoned_jobs("runner-c", now() + Duration::seconds(60), &errors)
            .await
            .unwrap();
        assert_eq!(failed, 2, "{backend}: both running jobs");
        assert_eq!(store.job_chunk_count(again).await.unwrap(), 0, "{backend}");
        store.close().await;
    })
    .await;
}
