//! Input that used to pass the checks (issue #13, points 13-15): look-alike keys,
//! percent-encoded `..` in roots and resources, and free text of any size. Each is tried
//! over REST (422 naming the field, or 409 naming the stored key) and through an import
//! (the file's pointer), on SQLite and PostgreSQL; nothing refused writes a row.

use app::{
    entities::{Prompt, Tool},
    model::EntityKind,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use server::{
    crypto::Cipher,
    store::Store,
    transfer::import::{Action, ConflictStrategy, ImportError, ImportOptions, import},
};

use crate::common::{
    SECRET, TestApp,
    harness::{Api, entity_counts},
    on_each_backend,
};

/// `(pointer, code)` of every detail of an error body.
fn details(body: &Value) -> Vec<(String, String)> {
    body["error"]["details"]
        .as_array()
        .unwrap_or_else(|| panic!("no details in {body}"))
        .iter()
        .map(|d| {
            let field = |k: &str| d[k].as_str().unwrap().to_owned();
            (field("pointer"), field("code"))
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(p, c)| (p.to_string(), c.to_string()))
        .collect()
}

#[expect(
    clippy::needless_pass_by_value,
    reason = "called with `json!` literals"
)]
fn file(entities: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"version": "1", "exported_at": "x", "entities": entities})).unwrap()
}

async fn import_file(
    store: &Store,
    bytes: &[u8],
) -> Result<Vec<(EntityKind, Action)>, ImportError> {
    let options = ImportOptions {
        strategy: ConflictStrategy::Update,
        dry_run: false,
        include: None,
        picked: None,
        source: None,
        observer: None,
        allow_missing_links: false,
    };
    let key = Cipher::new(&SecretString::from(SECRET));
    let report = import(store, &key, bytes, &options, "importer@example.com").await?;
    Ok(report.results.iter().map(|r| (r.kind, r.action)).collect())
}

fn invalid(result: Result<Vec<(EntityKind, Action)>, ImportError>) -> Vec<(String, String)> {
    match result {
        Err(ImportError::Invalid(errors)) => errors
            .iter()
            .map(|e| (e.pointer.clone(), e.code.to_string()))
            .collect(),
        other => panic!("expected a refused file, got {other:?}"),
    }
}

#[tokio::test]
async fn look_alike_keys_are_one_key_or_refused_over_rest() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        let api = Api::new(&app).await;
        let prompt = |name: &str| json!({"name": name, "template": "Hello"});
        let (status, body) = api
            .send(api.post("/prompts").json(&prompt("greeting")))
            .await;
        assert_eq!(status, 201, "{body}");

        // Trimmed, and names are unique regardless of case: each is `greeting` again.
        for twin in ["Greeting", "greeting ", "greeting\u{a0}", " GREETING"] {
            let (status, body) = api.send(api.post("/prompts").json(&prompt(twin))).await;
            assert_eq!(status, 409, "{twin:?}: {body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains("`greeting`"), "{twin:?}: {message}");
        }
        // No normal form makes these differ visibly: refused, naming the field.
        for (look_alike, code) in [
            ("greeting\u{200b}", "invisible_character"),
            ("gree\u{202e}ting", "invisible_character"),
            ("gr\u{0435}eting", "mixed_script"),
        ] {
            let (status, body) = api
                .send(api.post("/prompts").json(&prompt(look_alike)))
                .await;
            assert_eq!(status, 422, "{look_alike:?}: {body}");
            assert_eq!(details(&body), pairs(&[("/name", code)]), "{look_alike:?}");
        }

        // A rename onto a case twin is refused as well.
        let (_, farewell) = api
            .send(api.post("/prompts").json(&prompt("farewell")))
            .await;
        let path = format!("/prompts/{}", farewell["id"].as_str().unwrap());
        let patch = api
            .client
            .patch(format!("{}{path}", api.base))
            .bearer_auth(&api.token)
            .json(&json!({"name": "GREETING"}));
        let (status, body) = api.send(patch).await;
        assert_eq!(status, 409, "{body}");

        // Stored in the normal form: trimmed, NFC (a decomposed `é` becomes one character).
        let (status, body) = api
            .send(api.post("/prompts").json(&prompt(" cafe\u{301} ")))
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["name"], "caf\u{e9}");
        let (_, list) = api.send(api.get("/prompts")).await;
        let names: Vec<&str> = list["items"]
            .as_array()
            .unwrap_or_else(|| panic!("{list}"))
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["caf\u{e9}", "farewell", "greeting"]);
    })
    .await;
}

#[tokio::test]
async fn an_import_reads_look_alike_keys_as_the_stored_key_or_refuses_them() {
    on_each_backend(|db| async move {
        let store = db.store().await;
        let prompts = |list: Value| file(json!({ "prompts": list }));
        let created = import_file(
            &store,
            &prompts(json!([{"name": "greeting", "template": "Hello"}])),
        )
        .await
        .unwrap();
        assert_eq!(created, [(EntityKind::Prompt, Action::Created)]);

        // The same name in another case (and with a space) is the stored prompt, updated.
        let updated = import_file(
            &store,
            &prompts(json!([{"name": "Greeting ", "template": "Hi"}])),
        )
        .await
        .unwrap();
        assert_eq!(updated, [(EntityKind::Prompt, Action::Updated)]);
        let (stored, _) = store
            .list_entities::<Prompt>(&Default::default())
            .await
            .unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].name.as_deref(), Some("Greeting"));
        assert_eq!(stored[0].template.as_deref(), Some("Hi"));

        // In one file: spellings of one key are one key given twice; look-alikes refused.
        let before = entity_counts(&store).await;
        let refused = invalid(
            import_file(
                &store,
                &prompts(json!([
                    {"name": "greeting", "template": "Hello"},
                    {"name": "GREETING", "template": "Hello"},
                    {"name": "greeting\u{a0}", "template": "Hello"},
                    {"name": "greeting\u{200b}", "template": "Hello"},
                    {"name": "gr\u{0435}eting", "template": "Hello"},
                ])),
            )
            .await,
        );
        assert_eq!(
            refused,
            pairs(&[
                ("/entities/prompts/1/name", "duplicate"),
                ("/entities/prompts/3/name", "invisible_character"),
                ("/entities/prompts/4/name", "mixed_script"),
            ])
        );
        assert_eq!(entity_counts(&store).await, before, "nothing written");

        // A server's reference is read in the normal form too.
        let linked = import_file(
            &store,
            &file(json!({
                "tools": [{"name": "echo", "url": "https://x.example.com"}],
                "servers": [{"name": "s", "tool_ids": [" echo"]}],
            })),
        )
        .await
        .unwrap();
        assert_eq!(linked.len(), 2, "{linked:?}");
    })
    .await;
}

#[tokio::test]
async fn percent_encoded_dot_dot_is_refused_in_roots_and_resources() {
    let roots = [
        "file:///srv/%2e%2e/%2e%2e/etc/shadow",
        "file:///srv/..%2f..%2fetc/shadow",
        "file:///srv/%252e%252e/etc/shadow",
        "file:///srv/..%5cetc",
    ];
    let roots = &roots;
    on_each_backend(|db| async move {
        let store = db.store().await;
        let app = TestApp::spawn(db).await;
        let api = Api::new(&app).await;
        for uri in roots {
            let (status, body) = api
                .send(api.post("/roots").json(&json!({"uri": uri, "name": "r"})))
                .await;
            assert_eq!(status, 422, "{uri}: {body}");
            assert_eq!(
                details(&body),
                pairs(&[("/uri", "path_traversal")]),
                "{uri}"
            );
            let resource = json!({"uri": uri, "name": "r", "content": "x"});
            let (status, body) = api.send(api.post("/resources").json(&resource)).await;
            assert_eq!(status, 422, "{uri}: {body}");
            assert_eq!(details(&body), pairs(&[("/uri", "invalid_uri")]), "{uri}");
        }
        let refused = invalid(
            import_file(
                &store,
                &file(json!({
                    "resources": [{"uri": "docs://a/..%2f..%2fsecret", "name": "r"}],
                    "roots": [{"uri": roots[0], "name": "r"}],
                })),
            )
            .await,
        );
        assert_eq!(
            refused,
            pairs(&[
                ("/entities/resources/0/uri", "invalid_uri"),
                ("/entities/roots/0/uri", "path_traversal"),
            ])
        );
        // A dot that is not a whole segment stays valid.
        let (status, body) = api
            .send(
                api.post("/roots")
                    .json(&json!({"uri": "file:///srv/v1..2/%2e", "name": "r"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(entity_counts(&store).await, [0, 0, 0, 0, 0, 1]);
    })
    .await;
}

#[tokio::test]
async fn free_text_past_its_limit_is_refused_with_a_pointer_naming_the_limit() {
    on_each_backend(|db| async move {
        let store = db.store().await;
        let app = TestApp::spawn(db).await;
        let api = Api::new(&app).await;
        let long = "d".repeat(10_001);
        let tool = json!({
            "name": "t", "url": "https://x.example.com",
            "description": long, "displayName": "n".repeat(256),
            "headers": {"X-Big": "h".repeat(8193)},
        });
        let (status, body) = api.send(api.post("/tools").json(&tool)).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(
            details(&body),
            pairs(&[
                ("/displayName", "too_long"),
                ("/description", "too_long"),
                ("/headers/X-Big", "too_long"),
            ])
        );
        let message = body["error"]["details"][1]["message"].as_str().unwrap();
        assert_eq!(message, "must be at most 10,000 characters");
        // One character under is fine, and so is the limit in multi-byte characters.
        let fits = json!({"name": "t", "url": "https://x.example.com", "description": "é".repeat(10_000)});
        let (status, body) = api.send(api.post("/tools").json(&fits)).await;
        assert_eq!(status, 201, "{body}");

        let resource = json!({"uri": "docs://big", "name": "big", "content": "c".repeat((1 << 20) + 1)});
        let (status, body) = api.send(api.post("/resources").json(&resource)).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(details(&body), pairs(&[("/content", "too_long")]));

        // The import reads the same rules: the 60 MB description of the issue.
        let refused = invalid(
            import_file(
                &store,
                &file(json!({
                    "tools": [{"name": "big", "url": "https://x.example.com", "description": "d".repeat(60 << 20)}],
                    "prompts": [{"name": "p", "template": "t", "description": long}],
                })),
            )
            .await,
        );
        assert_eq!(
            refused,
            pairs(&[
                ("/entities/tools/0/description", "too_long"),
                ("/entities/prompts/0/description", "too_long"),
            ])
        );
        let (tools, _) = store
            .list_entities::<Tool>(&Default::default())
            .await
            .unwrap();
        assert_eq!(tools.len(), 1, "only the tool that fits");
    })
    .await;
}

/// The last migration before keys were folded.
const BEFORE_FOLD: i64 = 20261201000004;

/// Prompt names stored before the fold: case twins, a trailing space, a mixed-script
/// look-alike, and a plain name.
const LEGACY: [&str; 5] = [
    "greeting",
    "Greeting",
    "farewell ",
    "gr\u{0435}eting",
    "hello",
];

/// Migrates `$pool` up to [`BEFORE_FOLD`] and stores [`LEGACY`] as the gateway wrote rows then.
macro_rules! legacy_rows {
    ($pool:expr, $migrator:expr) => {{
        $migrator.run_to(BEFORE_FOLD, &$pool).await.unwrap();
        for name in LEGACY {
            let doc = json!({"name": name, "template": "Hello", "tags": [], "is_active": true, "visibility": "public"});
            sqlx::query(
                "INSERT INTO prompts (id, key, name, is_active, tag_index, auth_type, created_at, updated_at, doc) \
                 VALUES ($1, $2, $2, $3, ',', NULL, $4, $4, $5)",
            )
            .bind(uuid::Uuid::now_v7())
            .bind(name)
            .bind(true)
            .bind(chrono::Utc::now())
            .bind(sqlx::types::Json(doc))
            .execute(&$pool)
            .await
            .unwrap();
        }
        $pool.close().await;
    }};
}

#[tokio::test]
async fn keys_stored_before_the_fold_still_load_and_export_and_new_twins_are_refused() {
    on_each_backend(|db| async move {
        if db.backend == "sqlite" {
            let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&db.url)
                .unwrap()
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            legacy_rows!(pool, sqlx::migrate!("migrations/sqlite"));
        } else {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            legacy_rows!(pool, sqlx::migrate!("migrations/postgres"));
        }
        // Opening the store applies the fold's migration to the rows above.
        let store = db.store().await;
        let (stored, _) = store
            .list_entities::<Prompt>(&Default::default())
            .await
            .unwrap();
        assert_eq!(stored.len(), LEGACY.len(), "every stored row still loads");
        let options = server::transfer::export::ExportOptions::default();
        let exported = server::transfer::export::export(&store, &options, "a", "http://a")
            .await
            .unwrap();
        assert_eq!(exported.entities.prompts.len(), LEGACY.len(), "and exports");

        // A new write is checked against the folded keys the migration filled in.
        let cipher = Cipher::new(&SecretString::from(SECRET));
        let service = server::entities::Entities {
            store: &store,
            cipher: &cipher,
            actor: "test",
        };
        for twin in ["HELLO", "farewell"] {
            let refused = service
                .create::<Prompt>(json!({"name": twin, "template": "t"}))
                .await
                .unwrap_err();
            assert!(
                matches!(refused, server::error::Error::Conflict(ref m) if m.contains("is the same name as")),
                "{twin}: {refused:?}"
            );
        }
        service
            .create::<Prompt>(json!({"name": "new-one", "template": "t"}))
            .await
            .unwrap();
    })
    .await;
}
