//! Property tests of the import file parser and validator (`app::transfer`), the quick
//! companion of the cargo-fuzz targets in `fuzz/` (which run the same kind of checks for
//! millions of inputs): arbitrary bytes never panic; generated valid entities written as
//! an export file parse back equal; mutations of a valid file are refused with pointers
//! that locate the problem in the document, or accepted and then round-trip.

use std::collections::HashSet;

use app::{
    entities::{Entity, Timestamp, keys},
    model::EntityKind,
    transfer::{
        EntitySet, ExportFile, ParsedFile, Sink, entity_at, file_text, keep_entities,
        original_pointer, outline_file, parse_file, read_file, skim,
    },
    validation::{FieldError, Problems},
};
use proptest::{prelude::*, sample::Index};
use serde_json::{Map, Value, json};

/// RFC 6901 syntax: empty, or `/`-separated tokens in which `~` is always `~0` or `~1`.
fn is_pointer(p: &str) -> bool {
    let escapes_ok = p
        .split('~')
        .skip(1)
        .all(|rest| rest.starts_with('0') || rest.starts_with('1'));
    (p.is_empty() || p.starts_with('/')) && escapes_ok
}

fn parent(p: &str) -> &str {
    &p[..p.rfind('/').unwrap_or(0)]
}

/// Every problem has a valid pointer that (or whose parent, for a missing field)
/// resolves in `document`, and none is listed twice.
fn check_problems(problems: &[FieldError], document: Option<&Value>) -> Result<(), TestCaseError> {
    let mut seen = HashSet::new();
    for e in problems {
        prop_assert!(is_pointer(&e.pointer), "bad pointer syntax: {e:?}");
        if let Some(doc) = document {
            prop_assert!(
                doc.pointer(&e.pointer).is_some() || doc.pointer(parent(&e.pointer)).is_some(),
                "pointer outside the document: {e:?}"
            );
        }
        prop_assert!(
            seen.insert((&e.pointer, &e.code, &e.message)),
            "listed twice: {e:?}"
        );
        // An external reference points at the key it quotes (in the key's normal form).
        if let (Some(doc), "external_reference") = (document, e.code.as_str()) {
            let quoted = e
                .message
                .strip_prefix('`')
                .and_then(|m| m.strip_suffix("` is not in the file: it must exist in the target"));
            let at = doc.pointer(&e.pointer).and_then(Value::as_str);
            let at_normal = at.map(keys::normalise_key);
            prop_assert!(
                at.is_none() || at_normal.as_deref() == quoted,
                "{e:?} points at {at:?}"
            );
        }
    }
    Ok(())
}

/// The entities as the export writes them.
fn written(set: &EntitySet) -> Value {
    serde_json::to_value(set).unwrap()
}

/// An accepted file, written again the way `export` writes one, parses to the same entities.
fn check_round_trip(file: &ParsedFile) -> Result<(), TestCaseError> {
    let export = ExportFile {
        version: file.version.clone(),
        exported_at: file.exported_at.clone().unwrap_or_else(|| "x".into()),
        exported_by: "proptest".into(),
        source_gateway: "http://127.0.0.1:4444".into(),
        encryption_method: "AES-256-GCM".into(),
        entities: file.entities.clone(),
        metadata: json!({}),
    };
    let bytes = serde_json::to_vec(&export).unwrap();
    let again = parse_file(&bytes);
    prop_assert!(
        again.is_ok(),
        "written again, refused: {:?}\n{}",
        again.as_ref().err(),
        String::from_utf8_lossy(&bytes)
    );
    prop_assert_eq!(written(&again.unwrap().entities), written(&file.entities));
    Ok(())
}

fn check_any_input(bytes: &[u8]) -> Result<(), TestCaseError> {
    let document: Option<Value> = serde_json::from_slice(bytes).ok();
    match parse_file(bytes) {
        Err(errors) => {
            prop_assert!(!errors.is_empty());
            check_problems(&errors, document.as_ref())?;
        }
        Ok(file) => {
            check_problems(&file.warnings, document.as_ref())?;
            check_round_trip(&file)?;
        }
    }
    if let Some((doc, rows)) = outline_file(bytes) {
        for row in &rows {
            prop_assert!(doc.pointer(&row.pointer()).is_some());
        }
        let (kept, positions) = keep_entities(&doc, &|_, i| i % 2 == 0);
        if let Err(errors) = parse_file(&kept) {
            for e in errors.iter() {
                let mapped = original_pointer(&e.pointer, &positions);
                if let Some((_, i)) = entity_at(&mapped) {
                    prop_assert!(i % 2 == 0, "{e:?} maps to {mapped}");
                }
            }
        }
    }
    Ok(())
}

// ---- Generated entities ------------------------------------------------------------

/// Every entity handed over, by type.
#[derive(Default)]
struct Collected(EntitySet);

impl Sink for Collected {
    fn entity<E: Entity>(&mut self, _index: usize, entity: E) {
        self.0.list_mut::<E>().push(entity);
    }
}

/// The import reads a file in two walks (servers after what they link to, the second
/// walking the servers' list alone): it must find exactly what [`parse_file`]'s one walk
/// finds — the same entities, problems and warnings, in the same order.
fn check_two_walks(bytes: &[u8]) -> Result<(), TestCaseError> {
    use EntityKind::*;
    let passes: [&[EntityKind]; 2] = [&[Tool, Gateway, Root, Prompt, Resource], &[Server]];
    let two = (|| {
        let text = file_text(bytes, &mut |_| {})?;
        let skim = skim(text, &mut |_| {});
        let mut set = Collected::default();
        let head = read_file(text, &skim, &passes, &mut set)?;
        Ok::<_, Problems>((head, set.0))
    })();
    match (parse_file(bytes), two) {
        (Err(one), Err(two)) => prop_assert_eq!(one, two),
        (Ok(one), Ok((head, set))) => {
            prop_assert_eq!(one.warnings, head.warnings);
            prop_assert_eq!(written(&one.entities), written(&set));
        }
        (one, two) => prop_assert!(false, "one walk: {one:?}\ntwo walks: {two:?}"),
    }
    Ok(())
}

fn tool_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_][A-Za-z0-9._/-]{0,20}"
}

fn display_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9 _.():,/-]{0,20}"
}

fn http_url() -> impl Strategy<Value = String> {
    "(http|https)://[a-z]{1,8}(\\.example\\.com)?(:[0-9]{2,4})?(/[a-z0-9_-][a-z0-9_.-]{0,7}){0,3}"
}

fn tags() -> impl Strategy<Value = Vec<Value>> {
    prop::collection::vec(
        prop_oneof![
            "[a-z0-9][a-z0-9:.-]{0,6}[a-z0-9]".prop_map(Value::String),
            "[A-Z][A-Za-z _]{0,6}[a-z]".prop_map(Value::String),
            "[a-z][a-z0-9]{1,6}".prop_map(|t| json!({"id": t, "label": t})),
        ],
        0..4,
    )
}

/// ISO 8601 timestamps as ContextForge writes them (naive, with an offset, or `Z`).
fn timestamp() -> impl Strategy<Value = String> {
    (
        1970u32..=9998,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        0u32..60,
        prop_oneof![
            Just(String::new()),
            Just("Z".to_owned()),
            Just("+00:00".to_owned()),
            Just("-05:30".to_owned()),
            Just(".432106".to_owned()),
        ],
    )
        .prop_map(|(y, mo, d, h, mi, s, tail)| {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{tail}")
        })
}

fn blob() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{38,80}"
}

fn common_fields(
    mut entity: Map<String, Value>,
    (tags, visibility, active, created): (Vec<Value>, &'static str, bool, Option<String>),
) -> Value {
    entity.insert("tags".into(), Value::Array(tags));
    entity.insert("visibility".into(), visibility.into());
    entity.insert("is_active".into(), active.into());
    if let Some(t) = created {
        entity.insert("created_at".into(), t.clone().into());
        entity.insert("updated_at".into(), t.into());
    }
    Value::Object(entity)
}

type Common = (Vec<Value>, &'static str, bool, Option<String>);

fn common() -> impl Strategy<Value = Common> {
    (
        tags(),
        prop::sample::select(vec!["public", "team", "private"]),
        any::<bool>(),
        prop::option::of(timestamp()),
    )
}

fn object(pairs: Vec<(&str, Value)>) -> Map<String, Value> {
    pairs
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

fn tool() -> impl Strategy<Value = Value> {
    (
        tool_name(),
        http_url(),
        prop::sample::select(vec!["GET", "POST", "put", "DELETE", "PATCH"]),
        prop::option::of(display_name()),
        prop::collection::btree_map(
            "[A-Za-z][A-Za-z0-9_-]{0,8}",
            prop_oneof![3 => "[ -~]{0,12}", 1 => Just("*****".to_owned())],
            0..3,
        ),
        prop::option::of((
            prop::sample::select(vec!["basic", "bearer", "authheaders", "oauth"]),
            blob(),
        )),
        prop::option::of(0u32..10_000),
        common(),
    )
        .prop_map(
            |(name, url, method, display, headers, auth, rate, common)| {
                let (auth_type, auth_value) = auth.unzip();
                common_fields(
                    object(vec![
                        ("name", name.into()),
                        ("displayName", display.into()),
                        ("url", url.into()),
                        ("integration_type", "REST".into()),
                        ("request_type", method.into()),
                        ("headers", json!(headers)),
                        (
                            "input_schema",
                            json!({"type": "object", "properties": {"q": {"type": "string"}}}),
                        ),
                        ("annotations", json!({"title": "t", "readOnlyHint": true})),
                        ("rate_limit", rate.into()),
                        ("auth_type", auth_type.into()),
                        ("auth_value", auth_value.into()),
                    ]),
                    common,
                )
            },
        )
}

fn gateway() -> impl Strategy<Value = Value> {
    (
        display_name(),
        http_url(),
        prop::sample::select(vec!["SSE", "STREAMABLEHTTP"]),
        prop::option::of(blob()),
        common(),
    )
        .prop_map(|(name, url, transport, auth_value, common)| {
            common_fields(
                object(vec![
                    ("name", name.into()),
                    ("url", url.into()),
                    ("transport", transport.into()),
                    ("capabilities", json!({"tools": {"listChanged": true}})),
                    ("passthrough_headers", json!(["X-Tenant"])),
                    ("auth_type", auth_value.as_ref().map(|_| "bearer").into()),
                    ("auth_value", auth_value.into()),
                ]),
                common,
            )
        })
}

fn server() -> impl Strategy<Value = Value> {
    (
        display_name(),
        prop::collection::vec(tool_name(), 0..3),
        prop::collection::vec(display_name(), 0..2),
        common(),
    )
        .prop_map(|(name, tools, prompts, common)| {
            common_fields(
                object(vec![
                    ("name", name.into()),
                    ("description", "a server".into()),
                    ("tool_ids", json!(tools)),
                    ("prompt_ids", json!(prompts)),
                ]),
                common,
            )
        })
}

fn prompt() -> impl Strategy<Value = Value> {
    (display_name(), "[ -~]{1,30}", common()).prop_map(|(name, template, common)| {
        common_fields(
            object(vec![("name", name.into()), ("template", template.into())]),
            common,
        )
    })
}

fn resource() -> impl Strategy<Value = Value> {
    (
        display_name(),
        prop_oneof!["file:///[a-z]{1,8}(/[a-z]{1,8}){0,2}", http_url()],
        "[ -~]{0,20}",
        common(),
    )
        .prop_map(|(name, uri, content, common)| {
            common_fields(
                object(vec![
                    ("name", name.into()),
                    ("uri", uri.into()),
                    ("mime_type", "text/plain".into()),
                    ("content", content.into()),
                ]),
                common,
            )
        })
}

fn root() -> impl Strategy<Value = Value> {
    (
        prop_oneof!["file:///[a-z]{1,8}", http_url()],
        display_name(),
        common(),
    )
        .prop_map(|(uri, name, common)| {
            common_fields(
                object(vec![("uri", uri.into()), ("name", name.into())]),
                common,
            )
        })
}

/// Keeps the first entity of each key, compared as keys are (trimmed, and names
/// regardless of case): a differing duplicate is an error by design.
fn unique(list: Vec<Value>, kind: EntityKind) -> Vec<Value> {
    let field = if keys::folds_case(kind) {
        "name"
    } else {
        "uri"
    };
    let mut seen = HashSet::new();
    list.into_iter()
        .filter(|e| {
            let key = e[field].as_str().unwrap_or_default();
            seen.insert(keys::fold_key(kind, key).into_owned())
        })
        .collect()
}

/// A valid export file (as a JSON document) with a few entities of every type.
fn valid_file() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(tool(), 0..4),
        prop::collection::vec(gateway(), 0..3),
        prop::collection::vec(server(), 0..3),
        prop::collection::vec(prompt(), 0..3),
        prop::collection::vec(resource(), 0..3),
        prop::collection::vec(root(), 0..3),
    )
        .prop_map(|(tools, gateways, servers, prompts, resources, roots)| {
            json!({
                "version": "2025-11-25",
                "exported_at": "2026-11-25T14:03:04.549792Z",
                "exported_by": "admin@example.com",
                "source_gateway": "http://127.0.0.1:4444",
                "encryption_method": "AES-256-GCM",
                "entities": {
                    "tools": unique(tools, EntityKind::Tool),
                    "gateways": unique(gateways, EntityKind::Gateway),
                    "servers": unique(servers, EntityKind::Server),
                    "prompts": unique(prompts, EntityKind::Prompt),
                    "resources": unique(resources, EntityKind::Resource),
                    "roots": unique(roots, EntityKind::Root),
                },
                "metadata": {},
            })
        })
}

// ---- Mutations -----------------------------------------------------------------------

/// Every location in the document, as a JSON Pointer.
fn locations(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                locations(v, app::validation::join(&at, k), out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                locations(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!("")),
        Just(json!("*****")),
        Just(json!(-1)),
        Just(json!(1.5)),
        Just(json!(u64::MAX)),
        Just(json!(true)),
        Just(json!([])),
        Just(json!({})),
        Just(json!([7, "x", null])),
        Just(json!({"type": "array"})),
        Just(json!("ftp://x")),
        Just(json!("<b>")),
        Just(json!("a/b~c")),
        Just(json!("10000-01-01T00:00:00")),
        "[ -~]{0,12}".prop_map(Value::String),
    ]
}

#[derive(Clone, Debug)]
enum Mutation {
    Replace(Index, Value),
    Remove(Index),
    Insert(Index, String, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), odd_value()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        any::<Index>().prop_map(Mutation::Remove),
        (
            any::<Index>(),
            prop::sample::select(vec![
                "name",
                "url",
                "uri",
                "tags",
                "headers",
                "auth_type",
                "auth_value",
                "auth",
                "tool_ids",
                "widgets",
                "a/b~c",
                "created_at",
                "input_schema",
                "timeout",
            ]),
            odd_value()
        )
            .prop_map(|(i, k, v)| Mutation::Insert(i, k.to_owned(), v)),
    ]
}

fn apply(doc: &mut Value, m: &Mutation) {
    let mut at = Vec::new();
    locations(doc, String::new(), &mut at);
    match m {
        Mutation::Replace(i, v) => {
            if let Some(target) = doc.pointer_mut(i.get::<String>(&at)) {
                *target = v.clone();
            }
        }
        Mutation::Remove(i) => {
            let p = i.get::<String>(&at).clone();
            let (parent_at, last) = (parent(&p), &p[p.rfind('/').map_or(0, |i| i + 1)..]);
            let last = last.replace("~1", "/").replace("~0", "~");
            match doc.pointer_mut(parent_at) {
                Some(Value::Object(m)) => {
                    m.shift_remove(&last);
                }
                Some(Value::Array(a)) => {
                    if let Ok(i) = last.parse::<usize>()
                        && i < a.len()
                    {
                        a.remove(i);
                    }
                }
                _ => {}
            }
        }
        Mutation::Insert(i, k, v) => {
            if let Some(Value::Object(m)) = doc.pointer_mut(i.get::<String>(&at)) {
                m.insert(k.clone(), v.clone());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        check_any_input(&bytes)?;
        check_two_walks(&bytes)?;
    }

    #[test]
    fn json_like_text_never_panics(text in r#"[{}\[\]",: 0-9a-z_/~\\*-]{0,200}"#) {
        check_any_input(text.as_bytes())?;
        check_two_walks(text.as_bytes())?;
    }

    #[test]
    fn generated_valid_files_parse_and_round_trip(file in valid_file()) {
        let bytes = serde_json::to_vec(&file).unwrap();
        let parsed = parse_file(&bytes);
        prop_assert!(parsed.is_ok(), "{:?}\n{}", parsed.as_ref().err(), String::from_utf8_lossy(&bytes));
        let parsed = parsed.unwrap();
        for kind in EntityKind::ALL {
            let given = file["entities"][kind.plural()].as_array().map_or(0, Vec::len);
            let got = parsed.entities.counts().iter().find(|(k, _)| *k == kind).unwrap().1;
            prop_assert_eq!(given, got, "{:?}", kind);
        }
        for w in &parsed.warnings {
            prop_assert!(matches!(w.code.as_str(), "masked_value" | "external_reference"), "{w:?}");
        }
        check_problems(&parsed.warnings, Some(&file))?;
        check_round_trip(&parsed)?;
        check_two_walks(&bytes)?;
    }

    #[test]
    fn mutated_valid_files_are_refused_precisely_or_round_trip(
        file in valid_file(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut doc = file;
        for m in &mutations {
            apply(&mut doc, m);
        }
        let bytes = serde_json::to_vec(&doc).unwrap();
        check_two_walks(&bytes)?;
        match parse_file(&bytes) {
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                check_problems(&errors, Some(&doc))?;
                // The wizard can leave out every entity with an error and import the rest.
                let bad: Option<HashSet<(EntityKind, usize)>> =
                    errors.iter().map(|e| entity_at(&e.pointer)).collect();
                if let (Some(bad), Some((document, _))) = (bad, outline_file(&bytes)) {
                    let (kept, _) = keep_entities(&document, &|k, i| !bad.contains(&(k, i)));
                    let result = parse_file(&kept);
                    prop_assert!(result.is_ok(), "{:?}", result.err());
                }
            }
            Ok(parsed) => {
                check_problems(&parsed.warnings, Some(&doc))?;
                check_round_trip(&parsed)?;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// A timestamp the import accepts is written by the export in a form it reads again.
    #[test]
    fn accepted_timestamps_read_again_once_written(
        year in -20i32..10_020,
        (month, day, hour) in (1u32..=12, 1u32..=28, 0u32..24),
        tail in prop::sample::select(vec!["", "Z", ".5", "+00:00", "-05:00", "+14:00", ".123456789-23:59"]),
    ) {
        let text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:00:00{tail}");
        if let Ok(t) = serde_json::from_value::<Timestamp>(Value::String(text.clone())) {
            let written = serde_json::to_value(t).unwrap();
            let again = serde_json::from_value::<Timestamp>(written.clone());
            prop_assert!(again.is_ok(), "{} written as {} is refused", text, written);
            prop_assert_eq!(again.unwrap(), t);
        }
    }
}

// ---- Inputs found by fuzzing (fixtures/fuzz-regressions) -------------------------------

fn regression(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../fixtures/fuzz-regressions/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn pointers(problems: &[FieldError]) -> Vec<&str> {
    problems.iter().map(|e| e.pointer.as_str()).collect()
}

#[test]
fn every_fuzz_regression_holds_the_properties() {
    let dir = format!(
        "{}/../fixtures/fuzz-regressions",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures/fuzz-regressions") {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        if let Err(e) = check_any_input(&bytes) {
            panic!("{}: {e}", path.display());
        }
        n += 1;
    }
    assert!(n >= 3, "{n} files in {dir}");
}

#[test]
fn an_external_reference_names_the_servers_position_in_the_file() {
    // Servers 0 and 1 are identical (merged): the reference is server 2's, not 1's.
    let file = parse_file(&regression(
        "external-reference-after-merged-duplicate.json",
    ))
    .unwrap();
    let codes: Vec<&str> = file.warnings.iter().map(|w| w.code.as_str()).collect();
    assert_eq!(codes, ["duplicate_merged", "external_reference"]);
    assert_eq!(
        pointers(&file.warnings),
        ["/entities/servers/1", "/entities/servers/2/tool_ids/0"]
    );
}

#[test]
fn type_errors_after_a_bad_array_element_keep_their_positions() {
    let errors = parse_file(&regression("errors-after-removed-array-element.json")).unwrap_err();
    assert_eq!(
        pointers(&errors),
        ["/entities/tools/0/tags/1", "/entities/tools/0/tags/2"]
    );
}

#[test]
fn timestamps_outside_four_digit_years_are_refused() {
    let errors = parse_file(&regression("timestamp-year-outside-rfc3339.json")).unwrap_err();
    assert_eq!(
        pointers(&errors),
        [
            "/entities/roots/0/created_at",
            "/entities/roots/1/updated_at"
        ]
    );
}

/// Found by fuzzing: `parse_file` skips what it does not read, so a lone surrogate escape
/// or an out-of-range number outside the entities is accepted; the wizard's outline must
/// read such a file too (it leaves the unreadable member out).
#[test]
fn a_file_that_parses_has_an_outline() {
    let number = br#"{"version":"1","exported_at":"x","entities":{},"metadata":1e400}"#;
    for bytes in [
        regression("lone-surrogate-outside-entities.json"),
        number.to_vec(),
    ] {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert!(parse_file(&bytes).is_ok(), "{text}");
        assert!(outline_file(&bytes).is_some(), "{text}");
    }
}
