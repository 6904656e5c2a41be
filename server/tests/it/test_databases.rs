//! The test support cleans up after itself: a PostgreSQL test database is dropped when
//! its test ends, passed or panicked, after the processes the test started are gone.

use std::panic::{AssertUnwindSafe, catch_unwind};

use sqlx::{Connection, PgConnection};

use crate::common::{TestDb, harness};

/// Whether the cluster `TEST_DATABASE_URL` points at has the database `name`.
async fn exists(name: &str) -> bool {
    let admin_url = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL");
    let mut conn = PgConnection::connect(&admin_url).await.unwrap();
    let found: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    conn.close().await.unwrap();
    found
}

#[tokio::test]
async fn a_postgres_test_database_is_dropped_when_its_test_panics() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let store = db.store().await;
    assert!(exists(&name).await, "{name} was made");

    // A test that fails with its store open and a gateway process running on the database.
    let mut pid = None;
    let unwound = catch_unwind(AssertUnwindSafe(|| {
        let db = db;
        let _store = store;
        let (server, _url) = harness::serve(&db, &[]);
        pid = Some(server.id());
        panic!("the test failed");
    }));
    assert!(unwound.is_err());

    let pid = pid.expect("the server started");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the server process {pid} is gone"
    );
    assert!(!exists(&name).await, "{name} was dropped");
}
