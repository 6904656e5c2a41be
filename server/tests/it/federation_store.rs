//! Federation, the store side (issue #17): discovered tools, prompts and resources stored
//! beside local ones, tied to their gateway, refused for editing, left out of exports
//! and rebuilt after an import. On SQLite and PostgreSQL.

use std::{borrow::Cow, sync::Arc};

use app::{
    entities::{Gateway, Origin, Prompt, Resource, Server, Tool},
    model::EntityKind,
};
use rmcp::model::{self as mcp, PromptArgument};
use secrecy::SecretString;
use serde_json::{Value, json};
use server::{
    crypto::Cipher,
    entities::{Entities, changes},
    federation::{Discovered, sync},
    store::{Store, entities::ListQuery},
};
use uuid::Uuid;

use crate::common::{SECRET, on_each_backend};

fn cipher() -> Cipher {
    Cipher::new(&SecretString::from(SECRET))
}

/// Creates an entity through the service, as REST does.
async fn create<E: app::entities::Entity>(store: &Store, body: Value) -> E {
    let cipher = cipher();
    let service = Entities {
        store,
        cipher: &cipher,
        actor: "test",
    };
    service.create::<E>(body).await.expect("created")
}

async fn gateway(store: &Store, name: &str) -> Uuid {
    let gateway: Gateway = create(
        store,
        json!({"name": name, "url": format!("http://127.0.0.1:9/{}/mcp", name.replace(' ', "-")), "transport": "STREAMABLEHTTP"}),
    )
    .await;
    gateway.id.unwrap()
}

fn peer_tool(name: &str, description: &str) -> mcp::Tool {
    let schema =
        json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]});
    let Value::Object(schema) = schema else {
        unreachable!()
    };
    let mut tool = mcp::Tool::default();
    tool.name = Cow::Owned(name.to_owned());
    tool.title = Some(format!("{name} title"));
    tool.description = Some(Cow::Owned(description.to_owned()));
    tool.input_schema = Arc::new(schema);
    tool
}

fn peer_prompt(name: &str) -> mcp::Prompt {
    mcp::Prompt::new(
        name,
        Some("says hello"),
        Some(vec![
            PromptArgument::new("who")
                .with_description("whom to greet")
                .with_required(true),
        ]),
    )
}

fn peer_resource(uri: &str) -> mcp::Resource {
    mcp::Resource::new(uri, "info")
        .with_mime_type("text/plain")
        .with_description("about the peer")
}

async fn all<E: app::entities::Entity>(store: &Store) -> Vec<E> {
    let query = ListQuery {
        include_inactive: true,
        ..ListQuery::default()
    };
    store.list_entities::<E>(&query).await.unwrap().0
}

fn tool_named<'a>(tools: &'a [Tool], name: &str) -> Option<&'a Tool> {
    tools.iter().find(|t| t.name.as_deref() == Some(name))
}

#[tokio::test]
async fn apply_upserts_removes_and_publishes() {
    on_each_backend(|db| async move {
        let store = db.store().await;
        let backend = db.backend;
        let alpha = gateway(&store, "Alpha GW").await;
        let mut feed = changes::subscribe(&store);
        let mut caps = serde_json::Map::new();
        caps.insert("tools".into(), json!({"listChanged": true}));
        let found = Discovered {
            capabilities: caps.clone(),
            tools: vec![
                peer_tool("echo", "echoes"),
                peer_tool("get_weather", "weather"),
            ],
            prompts: vec![peer_prompt("greet")],
            resources: vec![peer_resource("mini://alpha/info")],
        };
        let report = sync::apply(&store, alpha, &found).await.unwrap();
        assert_eq!(
            report,
            sync::SyncReport {
                tools: 2,
                prompts: 1,
                resources: 1,
                removed: 0,
                skipped: vec![]
            },
            "{backend}"
        );
        let tools: Vec<Tool> = all(&store).await;
        let echo = tool_named(&tools, "alpha-gw-echo").expect("federated name");
        assert_eq!(
            echo.federation,
            Some(Origin {
                gateway_id: alpha,
                gateway: "Alpha GW".into(),
                remote_name: "echo".into()
            })
        );
        assert!(echo.is_active);
        assert_eq!(echo.display_name.as_deref(), Some("echo title"));
        assert_eq!(echo.input_schema["required"], json!(["text"]));
        assert_eq!(
            echo.integration_type,
            app::entities::tool::IntegrationType::MCP
        );
        assert!(
            tool_named(&tools, "alpha-gw-get-weather").is_some(),
            "{backend}"
        );
        let prompts: Vec<Prompt> = all(&store).await;
        assert_eq!(prompts[0].name.as_deref(), Some("alpha-gw-greet"));
        assert_eq!(prompts[0].input_schema["required"], json!(["who"]));
        let resources: Vec<Resource> = all(&store).await;
        assert_eq!(resources[0].uri.as_deref(), Some("mini://alpha/info"));
        assert_eq!(resources[0].mime_type.as_deref(), Some("text/plain"));
        let stored: Gateway = store.get_entity(alpha).await.unwrap().unwrap();
        assert_eq!(stored.capabilities, caps, "{backend}: capabilities stored");
        let mut heard = Vec::new();
        while let Ok(change) = feed.try_recv() {
            heard.push((change.kind, change.keys));
        }
        assert!(
            heard.contains(&(
                EntityKind::Tool,
                vec![
                    "alpha-gw-echo".to_owned(),
                    "alpha-gw-get-weather".to_owned()
                ]
            )),
            "{backend}: {heard:?}"
        );
        assert!(heard.contains(&(EntityKind::Prompt, vec!["alpha-gw-greet".to_owned()])));
        assert!(heard.contains(&(EntityKind::Resource, vec!["mini://alpha/info".to_owned()])));

        // Someone switches echo off; the peer changes echo and drops get_weather.
        let cipher = cipher();
        let service = Entities {
            store: &store,
            cipher: &cipher,
            actor: "test",
        };
        service
            .update::<Tool>(echo.id.unwrap(), json!({"is_active": false}))
            .await
            .expect("switching a federated tool off is allowed");
        let found = Discovered {
            capabilities: caps.clone(),
            tools: vec![peer_tool("echo", "echoes, louder")],
            ..found
        };
        let report = sync::apply(&store, alpha, &found).await.unwrap();
        assert_eq!((report.tools, report.removed), (1, 1), "{backend}");
        let tools: Vec<Tool> = all(&store).await;
        assert_eq!(tools.len(), 1, "{backend}: get_weather removed");
        assert_eq!(tools[0].description.as_deref(), Some("echoes, louder"));
        assert!(!tools[0].is_active, "{backend}: people's switch kept");
        let mut heard = Vec::new();
        while let Ok(change) = feed.try_recv() {
            heard.push((change.kind, change.keys));
        }
        assert!(
            heard.iter().any(|(kind, keys)| *kind == EntityKind::Tool
                && keys.contains(&"alpha-gw-get-weather".to_owned())
                && keys.contains(&"alpha-gw-echo".to_owned())),
            "{backend}: {heard:?}"
        );
        // Unchanged: nothing written, nothing told.
        let again = sync::apply(&store, alpha, &found).await.unwrap();
        assert_eq!((again.tools, again.removed), (1, 0));
        assert!(
            feed.try_recv().is_err(),
            "{backend}: an unchanged discovery is silent"
        );
    })
    .await;
}

#[tokio::test]
async fn a_name_taken_by_a_local_tool_or_another_gateway_is_skipped_and_reported() {
    on_each_backend(|db| async move {
        let store = db.store().await;
        let backend = db.backend;
        let alpha = gateway(&store, "alpha").await;
        let local: Tool = create(
            &store,
            json!({"name": "alpha-echo", "url": "http://127.0.0.1:9/echo", "description": "mine"}),
        )
        .await;
        let found = Discovered {
            tools: vec![peer_tool("echo", "theirs"), peer_tool("Echo", "twin"), peer_tool("ping", "p")],
            resources: vec![peer_resource("mini://shared/info")],
            ..Discovered::default()
        };
        let report = sync::apply(&store, alpha, &found).await.unwrap();
        assert_eq!(report.tools, 1, "{backend}: only ping stored");
        assert!(
            report.skipped.contains(&"tool `alpha-echo`: name taken by a local tool".to_owned()),
            "{backend}: {:?}",
            report.skipped
        );
        assert!(
            report.skipped.iter().any(|s| s.starts_with("tool `Echo`: its name `alpha-echo` is also that of `echo`")),
            "{backend}: {:?}",
            report.skipped
        );
        let kept: Tool = store.get_entity(local.id.unwrap()).await.unwrap().unwrap();
        assert_eq!(kept.description.as_deref(), Some("mine"), "{backend}: never overwritten");
        assert_eq!(kept.federation, None);

        // Another gateway offering the same resource URI does not take it over.
        let beta = gateway(&store, "beta").await;
        let report = sync::apply(&store, beta, &found).await.unwrap();
        assert!(
            report.skipped.contains(&"resource `mini://shared/info`: name taken by gateway `alpha`'s resource".to_owned()),
            "{backend}: {:?}",
            report.skipped
        );
        let resources: Vec<Resource> = all(&store).await;
        assert_eq!(resources.len(), 1);
        assert_eq!(resources[0].federation.as_ref().unwrap().gateway_id, alpha);
    })
    .await;
}

#[tokio::test]
async fn deleting_a_gateway_removes_its_items_and_their_server_links() {
    on_each_backend(|db| async move {
        let store = db.store().await;
        let backend = db.backend;
        let alpha = gateway(&store, "alpha").await;
        let beta = gateway(&store, "beta").await;
        let found = Discovered {
            tools: vec![peer_tool("echo", "e")],
            prompts: vec![peer_prompt("greet")],
            resources: vec![peer_resource("mini://x/info")],
            ..Discovered::default()
        };
        sync::apply(&store, alpha, &found).await.unwrap();
        let beta_found = Discovered {
            tools: vec![peer_tool("echo", "e")],
            ..Discovered::default()
        };
        sync::apply(&store, beta, &beta_found).await.unwrap();
        let _local: Tool = create(&store, json!({"name": "local", "url": "http://127.0.0.1:9/l"})).await;
        let server: Server = create(
            &store,
            json!({"name": "mixed", "associated_tools": ["alpha-echo", "beta-echo", "local"],
                   "associated_prompts": ["alpha-greet"], "associated_resources": ["mini://x/info"]}),
        )
        .await;
        let mut feed = changes::subscribe(&store);
        let cipher = cipher();
        let service = Entities { store: &store, cipher: &cipher, actor: "test" };
        service.delete::<Gateway>(alpha, false).await.unwrap();

        let tools: Vec<Tool> = all(&store).await;
        let names: Vec<_> = tools.iter().filter_map(|t| t.name.as_deref()).collect();
        assert_eq!(names, ["beta-echo", "local"], "{backend}");
        assert!(all::<Prompt>(&store).await.is_empty(), "{backend}");
        assert!(all::<Resource>(&store).await.is_empty(), "{backend}");
        let server: Server = store.get_entity(server.id.unwrap()).await.unwrap().unwrap();
        assert_eq!(server.tool_ids, ["beta-echo", "local"], "{backend}");
        assert!(server.prompt_ids.is_empty());
        assert!(server.resource_ids.is_empty());
        let mut heard = Vec::new();
        while let Ok(change) = feed.try_recv() {
            heard.push((change.kind, change.keys));
        }
        assert!(heard.contains(&(EntityKind::Tool, vec!["alpha-echo".to_owned()])), "{backend}: {heard:?}");
        assert!(heard.contains(&(EntityKind::Prompt, vec!["alpha-greet".to_owned()])));
        assert!(heard.contains(&(EntityKind::Resource, vec!["mini://x/info".to_owned()])));
    })
    .await;
}

/// `(status, body)` of a REST call with the admin's token.
async fn call(
    app: &crate::common::TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let response = app
        .client()
        .request(method, app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn rest_refuses_editing_a_federated_tool_naming_every_field() {
    on_each_backend(|db| async move {
        let backend = db.backend;
        let app = crate::common::TestApp::spawn(db).await;
        let token = app.admin_token().await;
        let alpha = gateway(&app.store, "alpha").await;
        let found = Discovered {
            tools: vec![peer_tool("echo", "echoes")],
            ..Discovered::default()
        };
        sync::apply(&app.store, alpha, &found).await.unwrap();
        let id = app.store.id_by_key(EntityKind::Tool, "alpha-echo").await.unwrap().unwrap();
        let path = format!("/tools/{id}");

        // The REST view shows where it came from.
        let (status, shown) = call(&app, &token, reqwest::Method::GET, &path, Value::Null).await;
        assert_eq!(status, 200, "{backend}: {shown}");
        assert_eq!(shown["federation"], json!({"gateway_id": alpha, "gateway": "alpha", "remote_name": "echo"}));

        let (status, body) = call(
            &app,
            &token,
            reqwest::Method::PATCH,
            &path,
            json!({"description": "mine now", "url": "http://127.0.0.1:9/x", "federation": null, "is_active": false}),
        )
        .await;
        assert_eq!(status, 422, "{backend}: {body}");
        let details = body["error"]["details"].as_array().unwrap();
        let pointers: Vec<&str> = details.iter().map(|d| d["pointer"].as_str().unwrap()).collect();
        assert_eq!(pointers, ["/description", "/federation", "/url"], "{backend}: every field named");
        for detail in details {
            assert_eq!(detail["code"], "federated");
            assert_eq!(detail["message"], "discovered from gateway `alpha`; change it on the peer");
        }
        let unchanged: Tool = app.store.get_entity(id).await.unwrap().unwrap();
        assert_eq!(unchanged.description.as_deref(), Some("echoes"), "{backend}: nothing written");
        assert!(unchanged.is_active);

        // Switching it off is ours; so is sending the record back as it was.
        let mut echoed = shown.clone();
        echoed["is_active"] = json!(false);
        let (status, body) = call(&app, &token, reqwest::Method::PATCH, &path, echoed).await;
        assert_eq!(status, 200, "{backend}: {body}");
        assert_eq!(body["is_active"], false);

        // Nobody creates a discovered tool by hand.
        let (status, body) = call(
            &app,
            &token,
            reqwest::Method::POST,
            "/tools",
            json!({"name": "alpha-fake", "url": "http://127.0.0.1:9/f",
                   "federation": {"gateway_id": alpha, "gateway": "alpha", "remote_name": "fake"}}),
        )
        .await;
        assert_eq!(status, 422, "{backend}: {body}");
        assert_eq!(body["error"]["details"][0]["pointer"], "/federation");
        assert!(app.store.id_by_key(EntityKind::Tool, "alpha-fake").await.unwrap().is_none());
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn export_leaves_federated_items_out_and_keeps_server_links_by_name() {
    use server::transfer::export::{ExportOptions, export, preview};
    on_each_backend(|db| async move {
        let store = db.store().await;
        let backend = db.backend;
        let alpha = gateway(&store, "alpha").await;
        let found = Discovered {
            tools: vec![peer_tool("echo", "e"), peer_tool("off", "o")],
            prompts: vec![peer_prompt("greet")],
            resources: vec![peer_resource("mini://alpha/info")],
            ..Discovered::default()
        };
        sync::apply(&store, alpha, &found).await.unwrap();
        // A disabled federated tool linked by an enabled server is no exported dependency.
        let off = store.id_by_key(EntityKind::Tool, "alpha-off").await.unwrap().unwrap();
        let cipher = cipher();
        let service = Entities { store: &store, cipher: &cipher, actor: "test" };
        service.update::<Tool>(off, json!({"is_active": false})).await.unwrap();
        let _local: Tool = create(&store, json!({"name": "local", "url": "http://127.0.0.1:9/l"})).await;
        let _server: Server = create(
            &store,
            json!({"name": "mixed", "associated_tools": ["alpha-echo", "alpha-off", "local"],
                   "associated_prompts": ["alpha-greet"], "associated_resources": ["mini://alpha/info"]}),
        )
        .await;
        let plain = ExportOptions {
            include_dependencies: true,
            ..ExportOptions::default()
        };
        let picked = ExportOptions {
            include_dependencies: true,
            picked: Some([(EntityKind::Server, "mixed".to_owned())].into_iter().collect()),
            ..ExportOptions::default()
        };
        for options in [plain, picked] {
            let file = export(&store, &options, "test", "here").await.unwrap();
            let tools: Vec<_> = file.entities.tools.iter().filter_map(|t| t.name.as_deref()).collect();
            assert_eq!(tools, ["local"], "{backend}: {options:?}");
            assert!(file.entities.prompts.is_empty(), "{backend}");
            assert!(file.entities.resources.is_empty(), "{backend}");
            let server = &file.entities.servers[0];
            assert_eq!(server.tool_ids, ["alpha-echo", "alpha-off", "local"], "{backend}");
            assert_eq!(server.prompt_ids, ["alpha-greet"]);
            assert_eq!(server.resource_ids, ["mini://alpha/info"]);
            if options.picked.is_none() {
                assert_eq!(file.entities.gateways.len(), 1, "{backend}: the gateway is exported");
            }
            let shown = preview(&store, &options).await.unwrap();
            let names: Vec<&str> = shown
                .selected
                .iter()
                .chain(&shown.dependencies)
                .map(|i| i.name.as_str())
                .collect();
            assert!(!names.iter().any(|n| n.starts_with("alpha-") || n.starts_with("mini:")), "{backend}: {names:?}");
        }
    })
    .await;
}

/// Imports `file` under the test key; the report, or the refusal.
async fn import_file(
    store: &Store,
    file: &Value,
) -> Result<server::transfer::import::ImportReport, server::transfer::import::ImportError> {
    use server::transfer::import::{ImportOptions, import};
    let bytes = serde_json::to_vec(file).unwrap();
    import(store, &cipher(), bytes, &ImportOptions::default(), "test").await
}

fn file_with(entities: Value) -> Value {
    json!({"version": "2025-03-26", "exported_at": "2026-12-04T00:00:00Z", "entities": entities})
}

#[tokio::test]
async fn an_imported_server_linking_an_undiscovered_tool_resolves_after_discovery() {
    on_each_backend(|db| async move {
        let store = db.store().await;
        let backend = db.backend;
        let file = file_with(json!({
            "gateways": [{"name": "alpha", "url": "http://127.0.0.1:9/alpha/mcp", "transport": "STREAMABLEHTTP"}],
            "tools": [{"name": "local", "url": "http://127.0.0.1:9/l"}],
            "servers": [{"name": "srv", "tool_ids": ["alpha-echo", "local"], "prompt_ids": ["alpha-greet"]}],
        }));
        let report = import_file(&store, &file).await.expect("imported");
        let pending: Vec<_> = report
            .warnings
            .iter()
            .filter(|w| w.code == app::validation::Code::PendingDiscovery)
            .map(|w| (w.pointer.as_str(), w.message.as_str()))
            .collect();
        assert_eq!(
            pending,
            [
                ("/entities/servers/0/tool_ids/0", "tool `alpha-echo` is not discovered yet: kept as an inactive placeholder of gateway `alpha`, filled when it connects"),
                ("/entities/servers/0/prompt_ids/0", "prompt `alpha-greet` is not discovered yet: kept as an inactive placeholder of gateway `alpha`, filled when it connects"),
            ],
            "{backend}"
        );
        let server_id = store.id_by_key(EntityKind::Server, "srv").await.unwrap().unwrap();
        let server: Server = store.get_entity(server_id).await.unwrap().unwrap();
        assert_eq!(server.tool_ids, ["alpha-echo", "local"], "{backend}");
        let tools: Vec<Tool> = all(&store).await;
        let placeholder = tool_named(&tools, "alpha-echo").unwrap();
        assert!(!placeholder.is_active, "{backend}: not callable before discovery");
        assert!(placeholder.federation.as_ref().unwrap().is_placeholder());

        let alpha = store.id_by_key(EntityKind::Gateway, "alpha").await.unwrap().unwrap();
        let found = Discovered {
            tools: vec![peer_tool("echo", "echoes")],
            ..Discovered::default()
        };
        let report = sync::apply(&store, alpha, &found).await.unwrap();
        assert_eq!((report.tools, report.removed), (1, 0), "{backend}: {report:?}");
        let tools: Vec<Tool> = all(&store).await;
        let echo = tool_named(&tools, "alpha-echo").unwrap();
        assert_eq!(echo.id, placeholder.id, "{backend}: the placeholder is filled in");
        assert!(echo.is_active, "{backend}");
        assert_eq!(echo.federation.as_ref().unwrap().remote_name, "echo");
        assert_eq!(echo.input_schema["properties"]["text"]["type"], "string");
        let server: Server = store.get_entity(server_id).await.unwrap().unwrap();
        assert_eq!(server.tool_ids, ["alpha-echo", "local"], "{backend}");
        // The prompt the peer does not offer stays a placeholder, linked and inactive.
        let prompts: Vec<Prompt> = all(&store).await;
        assert!(!prompts[0].is_active && prompts[0].federation.as_ref().unwrap().is_placeholder());
        assert_eq!(server.prompt_ids, ["alpha-greet"]);

        // A name no known gateway prefixes still refuses the file.
        let file = file_with(json!({
            "servers": [{"name": "other", "tool_ids": ["gamma-echo"]}],
        }));
        let refused = import_file(&store, &file).await.unwrap_err();
        assert!(refused.to_string().contains("problem"), "{backend}: {refused}");
        assert!(store.id_by_key(EntityKind::Server, "other").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn contextforge_discovered_prompts_and_resources_are_attributed_to_their_gateways() {
    use server::transfer::import::{ConflictStrategy, ImportOptions, import};
    on_each_backend(|db| async move {
        let store = db.store().await;
        let backend = db.backend;
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/contextforge/export-seed-dataset.json"
        );
        let bytes = std::fs::read(path).unwrap();
        let source = Cipher::new(&SecretString::from(
            "cfpeer-enc-K3p8Vn2Rq7Lx5Zt1Mw9Bc4Hy6Jd0Gs3F",
        ));
        let options = ImportOptions {
            source: Some(&source),
            strategy: ConflictStrategy::Update,
            ..ImportOptions::default()
        };
        let report = import(&store, &cipher(), bytes.clone(), &options, "test")
            .await
            .unwrap();
        let attributed = report
            .warnings
            .iter()
            .filter(|w| w.code == app::validation::Code::AttributedToGateway)
            .count();
        assert_eq!(attributed, 6, "{backend}: {:?}", report.warnings);
        assert!(
            !report
                .warnings
                .iter()
                .any(|w| w.code == app::validation::Code::DuplicateMerged)
        );

        let id_of = |name: &'static str| {
            let store = store.clone();
            async move {
                store
                    .id_by_key(EntityKind::Gateway, name)
                    .await
                    .unwrap()
                    .unwrap()
            }
        };
        let (alpha, beta, gamma) = (
            id_of("seed-gw-alpha").await,
            id_of("seed-gw-beta").await,
            id_of("seed-gw-gamma").await,
        );
        let prompts: Vec<Prompt> = all(&store).await;
        assert_eq!(prompts.len(), 15, "{backend}: three `greet`, not one");
        let origin_of = |name: &str| {
            let prompt = prompts
                .iter()
                .find(|p| p.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("{name}"));
            let origin = prompt.federation.clone().expect("discovered");
            (origin.gateway_id, origin.remote_name)
        };
        // Newest first in both lists: gamma's, beta's, alpha's.
        assert_eq!(
            origin_of("seed-gw-alpha-greet"),
            (alpha, "greet".to_owned()),
            "{backend}"
        );
        assert_eq!(origin_of("seed-gw-beta-greet"), (beta, "greet".to_owned()));
        assert_eq!(
            origin_of("seed-gw-gamma-greet"),
            (gamma, "greet".to_owned())
        );
        assert_eq!(
            prompts.iter().filter(|p| p.federation.is_none()).count(),
            12,
            "the seed prompts stay local"
        );
        let resources: Vec<Resource> = all(&store).await;
        assert_eq!(resources.len(), 11);
        for (uri, gateway) in [
            ("mini://alpha/info", alpha),
            ("mini://beta/info", beta),
            ("mini://gamma/info", gamma),
        ] {
            let resource = resources
                .iter()
                .find(|r| r.uri.as_deref() == Some(uri))
                .unwrap();
            assert_eq!(
                resource.federation.as_ref().map(|o| o.gateway_id),
                Some(gateway),
                "{backend}: {uri}"
            );
        }
        assert_eq!(
            resources.iter().filter(|r| r.federation.is_none()).count(),
            8
        );

        // Rediscovery replaces them: no duplicates.
        let found = Discovered {
            prompts: vec![peer_prompt("greet")],
            resources: vec![peer_resource("mini://alpha/info")],
            ..Discovered::default()
        };
        let synced = sync::apply(&store, alpha, &found).await.unwrap();
        assert_eq!(
            (synced.prompts, synced.resources, synced.removed),
            (1, 1, 0),
            "{backend}: {synced:?}"
        );
        assert!(synced.skipped.is_empty(), "{backend}: {:?}", synced.skipped);
        assert_eq!(all::<Prompt>(&store).await.len(), 15, "{backend}");
        assert_eq!(all::<Resource>(&store).await.len(), 11, "{backend}");

        // Importing the file again leaves the discovered ones to discovery.
        let again = import(&store, &cipher(), bytes, &options, "test")
            .await
            .unwrap();
        let greet = again
            .results
            .iter()
            .find(|r| r.name == "seed-gw-alpha-greet")
            .unwrap();
        assert_eq!(
            greet.action,
            server::transfer::import::Action::Unchanged,
            "{backend}"
        );
        assert_eq!(all::<Prompt>(&store).await.len(), 15, "{backend}");
    })
    .await;
}

#[tokio::test]
async fn an_import_neither_carries_nor_overwrites_discovered_items() {
    on_each_backend(|db| async move {
        let store = db.store().await;
        let backend = db.backend;
        let alpha = gateway(&store, "alpha").await;
        let file = file_with(json!({
            "tools": [{"name": "alpha-fake", "url": "http://127.0.0.1:9/f",
                       "federation": {"gateway_id": alpha, "gateway": "alpha", "remote_name": "fake"}}],
        }));
        let refused = import_file(&store, &file).await.unwrap_err();
        let server::transfer::import::ImportError::Invalid(problems) = refused else {
            panic!("{backend}: {refused}")
        };
        assert_eq!(problems[0].pointer, "/entities/tools/0/federation", "{backend}");
        assert_eq!(problems[0].code, app::validation::Code::Federated);
        assert!(store.id_by_key(EntityKind::Tool, "alpha-fake").await.unwrap().is_none());

        let found = Discovered {
            tools: vec![peer_tool("echo", "theirs")],
            ..Discovered::default()
        };
        sync::apply(&store, alpha, &found).await.unwrap();
        let file = file_with(json!({
            "tools": [{"name": "alpha-echo", "url": "http://127.0.0.1:9/mine", "description": "mine"}],
        }));
        use server::transfer::import::{ConflictStrategy, ImportOptions, import};
        let options = ImportOptions {
            strategy: ConflictStrategy::Update,
            ..ImportOptions::default()
        };
        let bytes = serde_json::to_vec(&file).unwrap();
        let refused = import(&store, &cipher(), bytes, &options, "test").await.unwrap_err();
        let server::transfer::import::ImportError::Invalid(problems) = refused else {
            panic!("{backend}: {refused}")
        };
        assert_eq!(problems[0].pointer, "/entities/tools/0/name", "{backend}");
        assert_eq!(problems[0].message, "discovered from gateway `alpha`; change it on the peer");
        let tools: Vec<Tool> = all(&store).await;
        assert_eq!(tools[0].description.as_deref(), Some("theirs"), "{backend}: nothing written");
    })
    .await;
}
