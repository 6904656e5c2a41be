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
