//! The seed data set (49 entities in 6 types) that tests, benchmarks and demos share,
//! and `--scale N` generation. Everything goes through the entity service, so seeding
//! exercises the same validation and encryption as the API.

use app::{
    entities::{Entity, Gateway, Prompt, Resource, Root, Server, Timestamp, Tool, parse_entity},
    model::EntityKind,
    transfer::EntitySet,
};
use serde_json::{Value, json};

use super::Entities;
use crate::{
    crypto::Cipher,
    error::{Error, Result},
};

/// How many entities of each type the seed data set holds.
pub const SEED_COUNTS: [(EntityKind, usize); 6] = [
    (EntityKind::Tool, 15),
    (EntityKind::Gateway, 3),
    (EntityKind::Server, 5),
    (EntityKind::Prompt, 12),
    (EntityKind::Resource, 8),
    (EntityKind::Root, 6),
];

/// What a seeding run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SeedReport {
    pub created: usize,
    pub unchanged: usize,
}

/// The plaintext secret the seed gives tool `i` (1-based); tests scan for these.
pub fn seed_tool_secret(i: usize) -> String {
    format!("seed-secret-tool-{i:02}-Zq8wX")
}

/// The plaintext secret the seed gives gateway `name`.
pub fn seed_gateway_secret(name: &str) -> String {
    format!("seed-secret-{name}-Kp3vN")
}

pub fn tools() -> Vec<Value> {
    (1..=15)
        .map(|i| {
            let (kind, auth) = match (i - 1) / 5 {
                0 => ("basic", json!({"type": "basic", "username": format!("svc-{i:02}"), "password": seed_tool_secret(i)})),
                1 => ("bearer", json!({"type": "bearer", "token": seed_tool_secret(i)})),
                _ => ("apikey", json!({"type": "authheaders", "headers": {"X-API-Key": seed_tool_secret(i), "X-Tenant": "seed"}})),
            };
            let mut tags = vec!["seed".to_owned(), format!("auth-{kind}")];
            if i % 3 == 0 {
                tags.push("production".into());
            }
            if i % 2 == 1 {
                tags.push("api".into());
            }
            json!({
                "name": format!("seed-tool-{i:02}-{kind}"),
                "displayName": format!("Seed Tool {i:02} ({kind})"),
                "url": format!("https://api.example.com/v1/tool{i:02}"),
                "integration_type": "REST",
                "request_type": if i % 4 == 0 { "POST" } else { "GET" },
                "description": format!("Seed REST tool #{i} using {kind} auth"),
                "headers": {"Accept": "application/json", "X-Seed": format!("{i}")},
                "input_schema": {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "description": "query text"},
                        "limit": {"type": "integer", "minimum": 1, "maximum": 100}
                    },
                    "required": ["query"]
                },
                "annotations": {"title": format!("Seed {i}"), "readOnlyHint": i % 4 != 0},
                "tags": tags,
                "auth": auth,
            })
        })
        .collect()
}

pub fn gateways() -> Vec<Value> {
    let capabilities = json!({"tools": {"listChanged": true}, "prompts": {"listChanged": true}, "resources": {"subscribe": true, "listChanged": true}});
    let gateway = |name: &str, port: u16, transport: &str, auth: Value| {
        let url = format!("https://{name}.peers.example.com:{port}/mcp");
        let mut g = json!({
            "name": name,
            "url": url,
            "description": format!("peer {name}"),
            "transport": transport,
            "capabilities": capabilities,
            "health_check": {"url": format!("{url}/health"), "interval": 30, "timeout": 10, "retries": 3},
            "tags": ["seed", "peer"],
            "passthrough_headers": ["X-Request-Id"],
        });
        if !auth.is_null() {
            g["auth"] = auth;
        }
        g
    };
    vec![
        gateway(
            "seed-gw-alpha",
            9101,
            "SSE",
            json!({"type": "bearer", "token": seed_gateway_secret("seed-gw-alpha")}),
        ),
        gateway("seed-gw-beta", 9102, "STREAMABLEHTTP", Value::Null),
        gateway(
            "seed-gw-gamma",
            9103,
            "STREAMABLEHTTP",
            json!({"type": "authheaders", "headers": {"X-Peer-Key": seed_gateway_secret("seed-gw-gamma"), "X-Peer-Org": "seed"}}),
        ),
    ]
}

pub fn prompts() -> Vec<Value> {
    (1..=12)
        .map(|i| {
            json!({
                "name": format!("seed-prompt-{i:02}"),
                "description": format!("Seed prompt #{i}"),
                "template": format!("You are assistant {i}. Summarise {{{{ topic }}}} for {{{{ audience }}}} in {} words.", 50 + i * 10),
                "input_schema": {
                    "type": "object",
                    "properties": {
                        "topic": {"type": "string", "description": "what to summarise"},
                        "audience": {"type": "string", "description": "who reads it"}
                    },
                    "required": ["topic"]
                },
                "tags": ["seed", format!("group-{}", (i - 1) / 4 + 1)],
            })
        })
        .collect()
}

pub fn resources() -> Vec<Value> {
    let items: [(&str, &str, Value); 8] = [
        (
            "readme",
            "text/plain",
            json!({"content": "Seed resource: plain text."}),
        ),
        (
            "guide",
            "text/markdown",
            json!({"content": "# Guide\n\nSeed *markdown* resource."}),
        ),
        (
            "config",
            "application/json",
            json!({"content": "{\"feature\": true, \"level\": 3}"}),
        ),
        (
            "theme",
            "text/css",
            json!({"content": "body { color: #222; }"}),
        ),
        (
            "feed",
            "application/xml",
            json!({"content": "<feed><entry>seed</entry></feed>"}),
        ),
        ("page", "text/html", json!({"content": "<p>Seed page</p>"})),
        (
            "script",
            "text/javascript",
            json!({"content": "export const seed = 1;"}),
        ),
        (
            "logo",
            "application/octet-stream",
            json!({"blob": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="}),
        ),
    ];
    items
        .into_iter()
        .map(|(name, mime, body)| {
            let mut r = json!({
                "name": format!("seed-resource-{name}"),
                "uri": format!("seed://resources/{name}"),
                "description": format!("Seed {mime} resource"),
                "mime_type": mime,
                "tags": ["seed"],
            });
            if let (Value::Object(r), Value::Object(body)) = (&mut r, body) {
                r.extend(body);
            }
            r
        })
        .collect()
}

pub fn servers() -> Vec<Value> {
    let tool = |i: usize| {
        let kind = ["basic", "bearer", "apikey"][(i - 1) / 5];
        format!("seed-tool-{i:02}-{kind}")
    };
    let compositions: [(&[usize], &[usize], &[&str]); 5] = [
        (&[1, 2, 3], &[1, 2], &["readme"]),
        (&[4, 5, 6, 7], &[3], &["guide", "config"]),
        (&[7, 8, 9, 10, 11], &[4, 5, 6], &[]),
        (&[10, 11, 12], &[], &["theme", "page"]),
        (&[13, 14, 15, 1], &[7, 8], &["logo"]),
    ];
    compositions
        .iter()
        .enumerate()
        .map(|(n, (tools, prompts, resources))| {
            json!({
                "name": format!("seed-server-{}", n + 1),
                "description": format!("Seed virtual server {} composed of {} tools", n + 1, tools.len()),
                "tool_ids": tools.iter().map(|i| tool(*i)).collect::<Vec<_>>(),
                "prompt_ids": prompts.iter().map(|i| format!("seed-prompt-{i:02}")).collect::<Vec<_>>(),
                "resource_ids": resources.iter().map(|r| format!("seed://resources/{r}")).collect::<Vec<_>>(),
                "tags": ["seed", format!("server-{}", n + 1)],
            })
        })
        .collect()
}

pub fn roots() -> Vec<Value> {
    vec![
        json!({"uri": "file:///srv/seed/project-a", "name": "Project A", "tags": ["seed"]}),
        json!({"uri": "file:///srv/seed/project-b", "name": "Project B", "tags": ["seed"]}),
        json!({"uri": "file:///home/seed/workspace", "name": "workspace", "tags": ["seed"]}),
        json!({"uri": "https://docs.example.com/seed", "name": "Seed docs", "tags": ["seed"]}),
        json!({"uri": "https://data.example.com/exports", "name": "Exports", "tags": ["seed"]}),
        json!({"uri": "http://intranet.example.com/wiki", "name": "Wiki", "tags": ["seed"]}),
    ]
}

/// Fills the gateway with the seed data set; entities whose key exists are left alone.
pub async fn seed(service: &Entities<'_>) -> Result<SeedReport> {
    let mut report = SeedReport::default();
    put::<Tool>(service, tools(), &mut report).await?;
    put::<Gateway>(service, gateways(), &mut report).await?;
    put::<Prompt>(service, prompts(), &mut report).await?;
    put::<Resource>(service, resources(), &mut report).await?;
    put::<Root>(service, roots(), &mut report).await?;
    put::<Server>(service, servers(), &mut report).await?;
    Ok(report)
}

async fn put<E: Entity>(
    service: &Entities<'_>,
    records: Vec<Value>,
    report: &mut SeedReport,
) -> Result<()> {
    for record in records {
        let key = record
            .get(key_field(E::KIND))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if service.store.id_by_key(E::KIND, key).await?.is_some() {
            report.unchanged += 1;
            continue;
        }
        service.create::<E>(record).await?;
        report.created += 1;
    }
    Ok(())
}

fn key_field(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Resource | EntityKind::Root => "uri",
        _ => "name",
    }
}

/// `n` generated records spread over the six types (roughly 40% tools, 20% prompts,
/// 20% resources, 10% servers, 5% gateways, 5% roots) with seed-like sizes, by type in
/// dependency order: tools carry JSON schemas, tags and credentials (`auth`, plaintext
/// until sealed); each server links up to 5 tools, 2 prompts and 1 resource.
pub fn scale_records(n: usize) -> Vec<(EntityKind, Vec<Value>)> {
    let share = |percent: usize| (n * percent).div_ceil(100);
    let (tools_n, prompts_n, resources_n, gateways_n, roots_n) =
        (share(40), share(20), share(20), share(5), share(5));
    let servers_n = n.saturating_sub(tools_n + prompts_n + resources_n + gateways_n + roots_n);
    let generate = |records: Vec<Value>, count: usize, field: &str| -> Vec<Value> {
        (0..count)
            .map(|i| {
                let mut r = records[i % records.len()].clone();
                let suffix = format!("scale-{i:06}");
                if let Some(Value::String(key)) = r.get_mut(field) {
                    *key = format!("{key}-{suffix}");
                }
                if field == "uri"
                    && let Some(Value::String(name)) = r.get_mut("name")
                {
                    *name = format!("{name}-{suffix}");
                }
                r
            })
            .collect()
    };
    let tools = generate(tools(), tools_n, "name");
    let prompts = generate(prompts(), prompts_n, "name");
    let resources = generate(resources(), resources_n, "uri");
    // Consecutive servers share some of their members, as real compositions do.
    let pick = |records: &[Value], field: &str, from: usize, count: usize| -> Vec<Value> {
        let mut keys: Vec<Value> = (0..count)
            .filter_map(|k| records.get((from + k).min(records.len().checked_sub(1)?)))
            .map(|r| r[field].clone())
            .collect();
        keys.dedup();
        keys
    };
    let servers: Vec<Value> = (0..servers_n)
        .map(|i| {
            json!({
                "name": format!("scale-server-{i:06}"),
                "description": "generated",
                "tool_ids": pick(&tools, "name", i * 3, 5),
                "prompt_ids": pick(&prompts, "name", i * 2, 2),
                "resource_ids": pick(&resources, "uri", i, 1),
                "tags": ["scale"],
            })
        })
        .collect();
    vec![
        (EntityKind::Tool, tools),
        (
            EntityKind::Gateway,
            generate(gateways(), gateways_n, "name"),
        ),
        (EntityKind::Prompt, prompts),
        (EntityKind::Resource, resources),
        (EntityKind::Root, generate(roots(), roots_n, "uri")),
        (EntityKind::Server, servers),
    ]
}

/// The records of [`scale_records`] validated and with credentials sealed with
/// `cipher`, as an export file holds them; no database involved.
pub fn scale_set(cipher: &Cipher, n: usize) -> Result<EntitySet> {
    fn parse<E: Entity>(cipher: &Cipher, records: Vec<Value>) -> Result<Vec<E>> {
        let now = Timestamp(crate::store::now());
        records
            .into_iter()
            .map(|record| {
                let (mut entity, _) = parse_entity::<E>(record, "").map_err(Error::Validation)?;
                super::seal(cipher, &mut entity, "")?;
                entity.set_timestamps(now, now);
                Ok(entity)
            })
            .collect()
    }
    let mut set = EntitySet::default();
    for (kind, records) in scale_records(n) {
        match kind {
            EntityKind::Tool => set.tools = parse(cipher, records)?,
            EntityKind::Gateway => set.gateways = parse(cipher, records)?,
            EntityKind::Prompt => set.prompts = parse(cipher, records)?,
            EntityKind::Resource => set.resources = parse(cipher, records)?,
            EntityKind::Root => set.roots = parse(cipher, records)?,
            EntityKind::Server => set.servers = parse(cipher, records)?,
        }
    }
    Ok(set)
}
