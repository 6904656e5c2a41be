//! The hostile corpus (`fixtures/hostile`, plus the files too big to commit, made here)
//! through `mcpgateway import` and through `POST /admin/import` on one running server:
//! each refused with exactly the pointers and codes of `expect.json` and no row written,
//! or (`accepted-*`) stored as plain text and shown escaped in the admin UI. The server
//! answers `/health` after every file.

use std::{collections::BTreeMap, path::PathBuf};

use app::{jobs::JobState, model::EntityKind};
use serde_json::{Value, json};

use crate::common::{
    TestApp, TestDb,
    harness::{Api, cli, entity_counts},
    on_each_backend, seed_store,
};

/// What a file must lead to.
#[derive(Clone, Debug)]
enum Expect {
    /// Refused with exactly these (pointer, code) pairs, in this order.
    Refused(Vec<(String, String)>),
    /// Imported: this many entities created per type (plural).
    Accepted(BTreeMap<String, i64>),
    /// Larger than the upload limit: 413 over REST; the CLI refuses it like `Refused`.
    TooLarge(Vec<(String, String)>),
}

struct Case {
    name: String,
    bytes: Vec<u8>,
    expect: Expect,
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/hostile"))
}

fn pairs(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().into(), p[1].as_str().unwrap().into()))
        .collect()
}

/// Every committed file, with its expectation; a file without one fails the test.
fn committed() -> Vec<Case> {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(corpus_dir().join("expect.json")).unwrap()).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json") && n != "expect.json")
        .collect();
    names.sort();
    assert_eq!(
        names.len(),
        manifest.as_object().unwrap().len(),
        "every file in fixtures/hostile has an entry in expect.json and back"
    );
    names
        .into_iter()
        .map(|name| {
            let entry = &manifest[&name];
            let expect = if let Some(list) = entry.get("refused") {
                Expect::Refused(pairs(list))
            } else {
                let created = entry["accepted"].as_object().expect(&name);
                Expect::Accepted(
                    created
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_i64().unwrap()))
                        .collect(),
                )
            };
            Case {
                bytes: std::fs::read(corpus_dir().join(&name)).unwrap(),
                name,
                expect,
            }
        })
        .collect()
}

#[expect(
    clippy::needless_pass_by_value,
    reason = "called with `json!` literals"
)]
fn file_with(entities: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"version": "1", "exported_at": "x", "entities": entities})).unwrap()
}

fn refused(list: &[(&str, &str)]) -> Expect {
    Expect::Refused(
        list.iter()
            .map(|(p, c)| (p.to_string(), c.to_string()))
            .collect(),
    )
}

/// The files too big (or too deep) to commit.
fn generated() -> Vec<Case> {
    let deep = 10_000;
    let in_entity = format!(
        r#"{{"version":"1","exported_at":"x","entities":{{"tools":[{{"name":"deep","url":"https://x.example.com","annotations":{}1{}}}]}}}}"#,
        "{\"a\":".repeat(deep),
        "}".repeat(deep)
    );
    let five_mb = "n".repeat(5 << 20);
    // Just over the 100 MB upload limit: one tool whose name is the whole file.
    let huge_name = "a".repeat((100 << 20) + 1024);
    vec![
        Case {
            name: "generated: JSON nested 10,000 deep inside a tool".into(),
            bytes: in_entity.into_bytes(),
            expect: refused(&[("/entities/tools/0", "invalid_json")]),
        },
        Case {
            name: "generated: arrays nested 10,000 deep".into(),
            bytes: format!("{}{}", "[".repeat(deep), "]".repeat(deep)).into_bytes(),
            expect: refused(&[("", "invalid_json")]),
        },
        Case {
            name: "generated: 5 MB tool and prompt names".into(),
            bytes: file_with(json!({
                "tools": [{"name": five_mb, "url": "https://x.example.com"}],
                "prompts": [{"name": five_mb, "template": "t"}],
            })),
            expect: refused(&[
                ("/entities/tools/0/name", "invalid_name"),
                ("/entities/prompts/0/name", "too_long"),
            ]),
        },
        Case {
            name: "generated: 70 KB prompt template".into(),
            bytes: file_with(json!({"prompts": [{"name": "big", "template": "t".repeat(70_000)}]})),
            expect: refused(&[("/entities/prompts/0/template", "too_long")]),
        },
        Case {
            name: "generated: 100 MB file".into(),
            bytes: file_with(
                json!({"tools": [{"name": huge_name, "url": "https://x.example.com"}]}),
            ),
            expect: Expect::TooLarge(vec![(
                "/entities/tools/0/name".into(),
                "invalid_name".into(),
            )]),
        },
    ]
}

/// The counts `before` plus what an accepted file creates.
fn plus(before: [i64; 6], created: &BTreeMap<String, i64>) -> [i64; 6] {
    let mut after = before;
    for (i, kind) in EntityKind::ALL.into_iter().enumerate() {
        after[i] += created.get(kind.plural()).copied().unwrap_or(0);
    }
    after
}

#[tokio::test]
async fn every_hostile_file_is_refused_precisely_or_stored_as_text_without_a_stray_row() {
    let mut cases = committed();
    assert!(cases.len() >= 40, "the corpus has {} files", cases.len());
    cases.extend(generated());
    let cases = &cases;
    on_each_backend(|db| async move {
        through_the_cli(cases, db.another().await).await;
        through_the_api(cases, db).await;
    })
    .await;
}

/// `mcpgateway import FILE` on a seeded database: exit 1 naming every pointer, and the
/// tables exactly as before; an accepted file exits 0 and adds its entities.
async fn through_the_cli(cases: &[Case], db: TestDb) {
    let store = db.store().await;
    seed_store(&store).await;
    let dir = tempfile::tempdir().unwrap();
    for case in cases {
        let before = entity_counts(&store).await;
        let path = dir.path().join("input.json");
        std::fs::write(&path, &case.bytes).unwrap();
        let out = cli(&db)
            .args(["import", path.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = &case.name;
        match &case.expect {
            Expect::Refused(errors) | Expect::TooLarge(errors) => {
                assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
                for (pointer, _) in errors {
                    let at = if pointer.is_empty() { "/" } else { pointer };
                    assert!(
                        stderr.contains(&format!("{at}: ")),
                        "{name}: {at} in {stderr}"
                    );
                }
                assert!(stderr.contains("nothing was imported"), "{name}: {stderr}");
                assert!(stderr.len() < 64 << 10, "{name}: the input is not echoed");
                assert_eq!(
                    entity_counts(&store).await,
                    before,
                    "{name}: no row written"
                );
            }
            Expect::Accepted(created) => {
                assert!(out.status.success(), "{name}: {stderr}");
                assert_eq!(entity_counts(&store).await, plus(before, created), "{name}");
            }
        }
    }
    let audit = store.audit_entries(Some("import"), 1000).await.unwrap();
    let accepted = cases
        .iter()
        .filter(|c| matches!(c.expect, Expect::Accepted(_)))
        .count();
    assert_eq!(
        audit.len(),
        accepted,
        "only accepted files leave an audit row"
    );
    store.close().await;
}

/// Preview and import over REST on one server: 422 with exactly the expected details
/// (413 above the upload limit), nothing queued, no row; `/health` answers after each.
async fn through_the_api(cases: &[Case], db: TestDb) {
    let app = TestApp::spawn(db).await;
    seed_store(&app.store).await;
    let api = Api::new(&app).await;
    for case in cases {
        let name = &case.name;
        let before = entity_counts(&app.store).await;
        let jobs_before = api.job_count().await;
        match &case.expect {
            Expect::Refused(errors) => {
                for path in ["/admin/import/preview", "/admin/import"] {
                    let (status, body) = api.upload(path, case.bytes.clone()).await;
                    assert_eq!(status, 422, "{name} {path}: {body}");
                    assert_eq!(body["error"]["code"], "validation_failed", "{name}");
                    assert_eq!(&pairs_of(&body), errors, "{name} {path}");
                }
            }
            Expect::TooLarge(_) => {
                let (status, body) = api.upload("/admin/import", case.bytes.clone()).await;
                assert_eq!(status, 413, "{name}: {body}");
                assert_eq!(body["error"]["code"], "payload_too_large", "{name}");
            }
            Expect::Accepted(created) => {
                let (status, body) = api.upload("/admin/import", case.bytes.clone()).await;
                assert_eq!(status, 202, "{name}: {body}");
                let job = api.finished(body["job_id"].as_str().unwrap()).await;
                assert_eq!(job.status, JobState::Completed, "{name}: {:?}", job.errors);
                let after = plus(before, created);
                assert_eq!(entity_counts(&app.store).await, after, "{name}");
                continue;
            }
        }
        assert_eq!(api.job_count().await, jobs_before, "{name}: nothing queued");
        assert_eq!(entity_counts(&app.store).await, before, "{name}: no row");
        let health = api.get("/health").send().await.unwrap();
        assert_eq!(health.status(), 200, "{name}: the server still answers");
    }
    script_is_text_and_escaped(&app, &api).await;
    app.stop().await;
}

fn pairs_of(body: &Value) -> Vec<(String, String)> {
    body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["pointer"].as_str().unwrap().into(),
                e["code"].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// The accepted `<script>` file: stored byte for byte, escaped in every UI page.
async fn script_is_text_and_escaped(app: &TestApp, api: &Api) {
    let (_, prompts) = api.send(api.get("/prompts?name=xss-prompt")).await;
    let prompt = &prompts["items"][0];
    assert_eq!(
        prompt["template"],
        "Hello <script>alert('template')</script> {{ name }}"
    );
    let (_, tools) = api.send(api.get("/tools?name=xss-tool")).await;
    let tool = &tools["items"][0];
    assert_eq!(tool["description"], "<script>alert('tool')</script>");
    let cookie = format!("mcpgw_session={}", app.session_cookie().await);
    // Lists show names and summaries; detail pages the whole entity (and the hydration
    // data, where `<` must be escaped inside the script as well).
    let pages = [
        ("/ui/prompts".to_owned(), false),
        (
            format!("/ui/prompts/{}", prompt["id"].as_str().unwrap()),
            true,
        ),
        ("/ui/tools".to_owned(), false),
        (format!("/ui/tools/{}", tool["id"].as_str().unwrap()), true),
    ];
    for (page, shows_content) in pages {
        let response = app
            .client()
            .get(app.url(&page))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{page}");
        let html = response.text().await.unwrap();
        assert!(html.contains("xss-"), "{page} lists the entity");
        if shows_content {
            assert!(
                html.contains("&lt;script&gt;alert("),
                "{page} shows the text escaped"
            );
        }
        for raw in ["<script>alert(", "<img src=x onerror"] {
            assert!(!html.contains(raw), "{page} carries a raw `{raw}`");
        }
    }
}
