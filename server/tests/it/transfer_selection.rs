//! What a new user hit with export and import (issue #14), each point end to end: tag
//! exports take exactly the tagged entities and the servers using them; a default export
//! imports anywhere; import options as query parameters; read-only commands never create
//! a database; selections that match nothing say so; a failed job lists every problem.

use app::{jobs::JobState, model::EntityKind};
use secrecy::SecretString;
use serde_json::{Value, json};
use server::{
    crypto::Cipher,
    store::Store,
    transfer::{
        export::{ExportOptions, export},
        import::{ConflictStrategy, ImportError, ImportOptions, ImportReport, import},
    },
};

use crate::common::{SECRET, TestApp, TestDb, harness::Api, on_each_backend};

fn cipher() -> Cipher {
    Cipher::new(&SecretString::from(SECRET))
}

fn tool(name: &str, tags: &[&str]) -> Value {
    json!({
        "name": name,
        "url": format!("https://api.example.com/{name}"),
        "integration_type": "REST",
        "request_type": "POST",
        "tags": tags,
    })
}

/// The file: tools `p1[production]`, `pa[production,api]`, `u1[]`, `u2[]`;
/// servers `s1{p1,u1}`, `s2{u2}`.
fn tagged_file() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "version": "2025-03-26",
        "exported_at": "2026-12-04T00:00:00Z",
        "entities": {
            "tools": [
                tool("p1", &["production"]),
                tool("pa", &["production", "api"]),
                tool("u1", &[]),
                tool("u2", &[]),
            ],
            "servers": [
                {"name": "s1", "tool_ids": ["p1", "u1"]},
                {"name": "s2", "tool_ids": ["u2"]},
            ],
        },
    }))
    .unwrap()
}

/// Imports `file` with the default strategy (update).
async fn update(store: &Store, file: Vec<u8>) -> Result<ImportReport, ImportError> {
    import(
        store,
        &cipher(),
        file,
        &options(ConflictStrategy::Update),
        "t",
    )
    .await
}

fn options(strategy: ConflictStrategy) -> ImportOptions<'static> {
    ImportOptions {
        strategy,
        ..Default::default()
    }
}

async fn export_value(store: &Store, options: &ExportOptions) -> Value {
    let file = export(store, options, "t@example.com", "http://a")
        .await
        .unwrap();
    serde_json::to_value(&file).unwrap()
}

/// Per type, the names (or URIs) in a file.
fn names(file: &Value, kind: EntityKind) -> Vec<String> {
    let key = if matches!(kind, EntityKind::Resource | EntityKind::Root) {
        "uri"
    } else {
        "name"
    };
    file["entities"][kind.plural()]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| e[key].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn tags(list: &[&str]) -> Vec<String> {
    list.iter().map(|t| t.to_string()).collect()
}

#[tokio::test]
async fn a_tag_export_holds_exactly_the_tagged_tools_and_the_servers_that_use_them() {
    on_each_backend(|db| async move {
        let a = db.store().await;
        update(&a, tagged_file()).await.unwrap();
        let by_tag = ExportOptions {
            types: vec![EntityKind::Tool],
            tags: tags(&["production"]),
            include_dependencies: true,
            ..Default::default()
        };
        let file = export_value(&a, &by_tag).await;
        assert_eq!(
            names(&file, EntityKind::Tool),
            ["p1", "pa"],
            "{}",
            db.backend
        );
        assert_eq!(
            names(&file, EntityKind::Server),
            ["s1"],
            "named by the request"
        );
        assert_eq!(
            file["entities"]["servers"][0]["tool_ids"],
            json!(["p1", "u1"]),
            "a server keeps its whole link list"
        );

        let alone = ExportOptions {
            include_dependencies: false,
            ..by_tag.clone()
        };
        let file = export_value(&a, &alone).await;
        assert_eq!(names(&file, EntityKind::Tool), ["p1", "pa"]);
        assert!(names(&file, EntityKind::Server).is_empty());

        let all_of = ExportOptions {
            tags: tags(&["production", "api"]),
            tags_all: true,
            ..by_tag.clone()
        };
        let file = export_value(&a, &all_of).await;
        assert_eq!(names(&file, EntityKind::Tool), ["pa"]);
        assert!(
            names(&file, EntityKind::Server).is_empty(),
            "pa is in no server"
        );
        let any_of = ExportOptions {
            tags: tags(&["api", "nosuch"]),
            ..by_tag.clone()
        };
        assert_eq!(
            names(&export_value(&a, &any_of).await, EntityKind::Tool),
            ["pa"]
        );

        // Where it came from, `u1` is there: the file imports cleanly.
        let bytes = serde_json::to_vec(&export_value(&a, &by_tag).await).unwrap();
        let again = update(&a, bytes.clone()).await.unwrap();
        assert!(again.warnings.is_empty(), "{:?}", again.warnings);

        // Elsewhere the missing link is refused with its pointer, or left out on request.
        let db_b = db.another().await;
        let b = db_b.store().await;
        let refused = update(&b, bytes.clone()).await.unwrap_err();
        let ImportError::Invalid(errors) = refused else {
            panic!("{refused}")
        };
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].pointer, "/entities/servers/0/tool_ids/1");
        assert!(errors[0].message.contains("no tool `u1`"), "{errors:?}");
        assert_eq!(b.count_entities(EntityKind::Tool).await.unwrap(), 0);
        let lenient = ImportOptions {
            allow_missing_links: true,
            ..options(ConflictStrategy::Update)
        };
        let report = import(&b, &cipher(), bytes, &lenient, "t").await.unwrap();
        let dropped: Vec<&str> = report
            .warnings
            .iter()
            .filter(|w| w.code == "missing_link_dropped")
            .map(|w| w.pointer.as_str())
            .collect();
        assert_eq!(dropped, ["/entities/servers/0/tool_ids/1"]);
        let copy = export_value(
            &b,
            &ExportOptions {
                include_dependencies: true,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(copy["entities"]["servers"][0]["tool_ids"], json!(["p1"]));
        assert_eq!(names(&copy, EntityKind::Tool), ["p1", "pa"]);
    })
    .await;
}

#[tokio::test]
async fn tag_rules_hold_over_rest_and_in_the_cli_help() {
    let app = TestApp::spawn(TestDb::sqlite()).await;
    update(&app.store, tagged_file()).await.unwrap();
    let api = Api::new(&app).await;
    let file: Value =
        serde_json::from_slice(&api.export("?types=tools&tags=production").await).unwrap();
    assert_eq!(names(&file, EntityKind::Tool), ["p1", "pa"]);
    assert_eq!(names(&file, EntityKind::Server), ["s1"]);
    let file: Value = serde_json::from_slice(
        &api.export("?types=tools&tags=production,api&tags_all=true")
            .await,
    )
    .unwrap();
    assert_eq!(names(&file, EntityKind::Tool), ["pa"]);
    let (code, body) = api.send(api.get("/admin/export?tags_all=maybe")).await;
    assert_eq!(code, 400, "{body}");

    // A remote import leaves the missing link out when asked to, as the local one does.
    let b = TestApp::spawn(TestDb::sqlite()).await;
    let api_b = Api::new(&b).await;
    let bytes = api.export("?types=tools&tags=production").await;
    let (code, body) = api_b.upload("/admin/import/preview", bytes.clone()).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        body["error"]["details"][0]["pointer"],
        "/entities/servers/0/tool_ids/1"
    );
    let (code, created) = api_b
        .start_import(bytes, &[("allow_missing_links", "true")])
        .await;
    assert_eq!(code, 202, "{created}");
    let done = api_b.finished(created["job_id"].as_str().unwrap()).await;
    assert_eq!(done.status, JobState::Completed, "{:?}", done.errors);
    assert!(
        done.warnings
            .iter()
            .any(|w| w.pointer == "/entities/servers/0/tool_ids/1"),
        "{:?}",
        done.warnings
    );

    let help = crate::common::harness::cli(&app.db)
        .args(["export", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("--tags-all"), "{help}");
    assert!(help.contains("ANY of these tags"), "{help}");
    assert!(help.contains("ALL the tags"), "{help}");
    let import_help = crate::common::harness::cli(&app.db)
        .args(["import", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&import_help.stdout).contains("--allow-missing-links"));
}

#[tokio::test]
async fn a_default_export_carries_the_disabled_tools_its_servers_use_and_imports_anywhere() {
    on_each_backend(|db| async move {
        let a = db.store().await;
        crate::common::seed_store(&a).await;
        let service = server::entities::Entities {
            store: &a,
            cipher: &cipher(),
            actor: "test",
        };
        let id = a
            .id_by_key(EntityKind::Tool, "seed-tool-02-basic")
            .await
            .unwrap()
            .unwrap();
        service
            .update::<app::entities::Tool>(id, json!({"is_active": false}))
            .await
            .unwrap();
        let default = ExportOptions {
            include_dependencies: true,
            ..Default::default()
        };
        let file = export_value(&a, &default).await;
        let tools = &file["entities"]["tools"];
        let disabled: Vec<&Value> = tools
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["is_active"] == false)
            .collect();
        assert_eq!(disabled.len(), 1, "{}", db.backend);
        assert_eq!(disabled[0]["name"], "seed-tool-02-basic");
        assert_eq!(tools.as_array().unwrap().len(), 15);

        let bytes = serde_json::to_vec(&file).unwrap();
        let db_b = db.another().await;
        let b = db_b.store().await;
        let report = update(&b, bytes.clone())
            .await
            .expect("a default export imports into an empty gateway");
        assert_eq!(report.results.len(), 49);
        let again = update(&a, bytes).await.expect("and where it came from");
        assert!(
            again
                .results
                .iter()
                .all(|r| r.action == app::jobs::Action::Unchanged)
        );
        let copy = export_value(
            &b,
            &ExportOptions {
                include_inactive: true,
                ..default.clone()
            },
        )
        .await;
        let tool = copy["entities"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "seed-tool-02-basic")
            .unwrap()
            .clone();
        assert_eq!(tool["is_active"], false, "still disabled after the import");

        // The preview says so, and who needs it.
        let preview = server::transfer::export::preview(&a, &default)
            .await
            .unwrap();
        assert_eq!(preview.total, 49);
        assert_eq!(preview.counts["tools"], 15);
        let needed = preview
            .dependencies
            .iter()
            .find(|d| d.name == "seed-tool-02-basic")
            .expect("the disabled tool is a dependency");
        assert_eq!(needed.required_by, ["seed-server-1"]);
        // A selection's dependencies come along disabled too.
        let one = ExportOptions {
            include: Some(
                server::transfer::selection::Include::parse("server:seed-server-1").unwrap(),
            ),
            ..default.clone()
        };
        let file = export_value(&a, &one).await;
        assert!(names(&file, EntityKind::Tool).contains(&"seed-tool-02-basic".to_owned()));
    })
    .await;
}

#[tokio::test]
async fn import_options_as_query_parameters_are_honoured_and_a_dry_run_writes_nothing() {
    let app = TestApp::spawn(TestDb::sqlite()).await;
    let api = Api::new(&app).await;
    let file = tagged_file();
    let (code, created) = api
        .send(
            api.post("/admin/import?dry_run=true")
                .multipart(form(file.clone(), &[])),
        )
        .await;
    assert_eq!(code, 202, "{created}");
    let done = api.finished(created["job_id"].as_str().unwrap()).await;
    assert_eq!(done.status, JobState::Completed);
    assert!(done.dry_run, "the query's dry_run is the job's");
    assert_eq!(
        app.store.count_entities(EntityKind::Tool).await.unwrap(),
        0,
        "a dry run writes nothing"
    );

    let (code, preview) = api
        .send(
            api.post("/admin/import/preview?include=tool:p1")
                .multipart(form(file.clone(), &[])),
        )
        .await;
    assert_eq!(code, 200, "{preview}");
    assert_eq!(preview["total"], 1, "{preview}");

    for (query, fields, pointers) in [
        ("?dry_run=true&colour=red", vec![], vec!["/colour"]),
        (
            "?dry_run=true",
            vec![("dry_run", "false")],
            vec!["/dry_run"],
        ),
        (
            "?conflict_strategy=skip",
            vec![("conflict_strategy", "fail")],
            vec!["/conflict_strategy"],
        ),
        ("?file=x", vec![], vec!["/file"]),
    ] {
        let before = api.job_count().await;
        let (code, body) = api
            .send(
                api.post(&format!("/admin/import{query}"))
                    .multipart(form(file.clone(), &fields)),
            )
            .await;
        assert_eq!(code, 400, "{query}: {body}");
        let got: Vec<&str> = body["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["pointer"].as_str().unwrap())
            .collect();
        assert_eq!(got, pointers, "{query}");
        assert_eq!(api.job_count().await, before, "nothing queued");
    }
    // The same value twice is one option.
    let (code, created) = api
        .send(
            api.post("/admin/import?dry_run=true")
                .multipart(form(file.clone(), &[("dry_run", "true")])),
        )
        .await;
    assert_eq!(code, 202, "{created}");
    api.finished(created["job_id"].as_str().unwrap()).await;
    assert_eq!(app.store.count_entities(EntityKind::Tool).await.unwrap(), 0);
}

fn form(file: Vec<u8>, fields: &[(&str, &str)]) -> reqwest::multipart::Form {
    let part = reqwest::multipart::Part::bytes(file)
        .file_name("export.json")
        .mime_str("application/json")
        .unwrap();
    let mut form = reqwest::multipart::Form::new().part("file", part);
    for (name, value) in fields {
        form = form.text(name.to_string(), value.to_string());
    }
    form
}

#[test]
fn export_and_diff_never_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    // A URL whose file is not there (nothing opens it before the commands run).
    let db = TestDb::sqlite();
    let path = std::path::PathBuf::from(db.url.strip_prefix("sqlite://").unwrap());
    let file = dir.path().join("f.json");
    std::fs::write(&file, tagged_file()).unwrap();
    for args in [
        vec!["export", "--out", "-"],
        vec!["diff", file.to_str().unwrap()],
    ] {
        let out = crate::common::harness::cli(&db)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("no database at {}", db.url)),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!path.exists(), "{args:?} created {}", path.display());
    }
    // Run where no URL is set: the default file is not created either.
    let mut bare = crate::common::harness::cli(&db);
    bare.env_remove("DATABASE_URL").current_dir(dir.path());
    let out = bare.args(["export"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sqlite://mcpgateway.db"));
    assert!(!dir.path().join("mcpgateway.db").exists());
}

#[test]
fn selections_that_match_nothing_warn_and_malformed_ones_are_usage_errors() {
    let db = TestDb::sqlite();
    let seed = crate::common::harness::cli(&db)
        .arg("seed")
        .output()
        .unwrap();
    assert!(seed.status.success());
    for spec in ["tool:weather_api;server:ai-server", "tool:", "weather_api"] {
        let out = crate::common::harness::cli(&db)
            .args(["export", "--out", "-", "--include", spec])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{spec}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("type:pattern"), "{spec}: {stderr}");
    }
    for (args, warning) in [
        (
            vec!["--include", "tool:nosuch,tool:seed-tool-01-basic"],
            "--include `tool:nosuch` matches no enabled entity",
        ),
        (
            vec!["--tags", "nosuchtag"],
            "--tags `nosuchtag`: no enabled entity of the exported types has this tag",
        ),
    ] {
        let out = crate::common::harness::cli(&db)
            .args(["export", "--out", "-"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("warning: {warning}")),
            "{args:?}: {stderr}"
        );
        assert_eq!(
            stderr.matches("warning:").count(),
            1,
            "only the item that matches nothing: {stderr}"
        );
    }
    // An import's `--include` item that names nothing in the file is a warning too.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.json");
    std::fs::write(&file, tagged_file()).unwrap();
    let out = crate::common::harness::cli(&db)
        .args(["import", file.to_str().unwrap(), "--dry-run"])
        .args(["--include", "tool:p1,server:nosuch"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("warning: /include: --include `server:nosuch` matches no entity of the file"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("warning:").count(), 1, "{stderr}");
    // Over REST a malformed spec is a 400 naming the parameter.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let app = TestApp::spawn(TestDb::sqlite()).await;
        let api = Api::new(&app).await;
        let (code, body) = api
            .send(api.get("/admin/export?include=tool:a;server:b"))
            .await;
        assert_eq!(code, 400, "{body}");
        assert_eq!(body["error"]["details"][0]["pointer"], "/include");
        // The export preview names what matches nothing.
        let (code, preview) = api
            .send(api.get("/admin/export/preview?include=tool:nosuch&tags=nosuchtag"))
            .await;
        assert_eq!(code, 200, "{preview}");
        assert_eq!(
            preview["warnings"],
            json!([
                "--include `tool:nosuch` matches no enabled entity",
                "--tags `nosuchtag`: no enabled entity of the exported types has this tag"
            ])
        );
    });
}

#[tokio::test]
async fn a_failed_job_lists_every_conflict_with_its_pointer_and_entity() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        let api = Api::new(&app).await;
        update(&app.store, tagged_file()).await.unwrap();
        let mut file: Value = serde_json::from_slice(&tagged_file()).unwrap();
        file["entities"]["tools"][1]["description"] = json!("changed");
        file["entities"]["tools"][3]["description"] = json!("changed");
        file["entities"]["servers"][1]["description"] = json!("changed");
        let bytes = serde_json::to_vec(&file).unwrap();
        let (code, created) = api
            .start_import(bytes.clone(), &[("conflict_strategy", "fail")])
            .await;
        assert_eq!(code, 202, "{created}");
        let id = created["job_id"].as_str().unwrap().to_owned();
        let done = api.finished(&id).await;
        assert_eq!(done.status, JobState::Failed);
        let listed: Vec<(&str, &str)> = done
            .errors
            .iter()
            .map(|e| (e.pointer.as_str(), e.code.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                ("/entities/tools/1", "conflict"),
                ("/entities/tools/3", "conflict"),
                ("/entities/servers/1", "conflict"),
            ],
            "{:?}",
            done.errors
        );
        assert!(
            done.errors[0].message.contains("tool `pa`"),
            "{:?}",
            done.errors
        );
        assert!(
            done.errors[2].message.contains("server `s2`"),
            "{:?}",
            done.errors
        );
        assert_eq!(done.counts["tools"].failed, 2);
        assert_eq!(done.counts["servers"].failed, 1);

        // The SSE `done` event carries the same list.
        let response = api
            .get(&format!("/admin/import/status/{id}/events"))
            .send()
            .await
            .unwrap();
        let events = crate::common::harness::read_events(response).await;
        let last = events.last().expect("an event");
        assert_eq!(last.0, "done");
        assert_eq!(last.1.errors, done.errors);

        // And the CLI says the same, naming every conflict.
        let path = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(path.path(), &bytes).unwrap();
        let out = crate::common::harness::cli(&app.db)
            .args([
                "import",
                path.path().to_str().unwrap(),
                "--conflict-strategy",
                "fail",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        for pointer in [
            "/entities/tools/1",
            "/entities/tools/3",
            "/entities/servers/1",
        ] {
            assert!(stderr.contains(&format!("{pointer}: ")), "{stderr}");
        }
        assert!(stderr.contains("3 conflict(s)"), "{stderr}");
    })
    .await;
}
