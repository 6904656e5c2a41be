//! The validating pass: every entity parsed and checked one at a time and handed to a
//! [`Sink`], every problem of the file collected and reported in file order.
//!
//! The file is walked once per group of types (an import reads servers after what they
//! link to); only keys the [`Skim`] saw twice are remembered, to merge identical
//! duplicates. Nothing else of the file is kept here.

use std::{
    collections::{BTreeMap, HashMap},
    ops::Range,
};

use serde_json::{Value, value::RawValue};

use super::{
    discovered::Attribution,
    skim::{REPORT_EVERY, Skim},
    walk::{List, Walker, problem, span, walk, walk_list},
};
use crate::{
    entities::{
        Entity, Gateway, Prompt, Resource, Root, Server, Tool, keys::fold_key, parse_entity,
    },
    model::EntityKind,
    validation::{Code, Errors, FieldError, MAX_LISTED, Problems, join},
};

/// Takes the entities of a file as they are read.
pub trait Sink {
    /// A valid entity, at `index` in its type's list (an identical duplicate comes once).
    /// Once the file has a problem no more entities are handed over.
    fn entity<E: Entity>(&mut self, index: usize, entity: E);
    /// The file has been read up to this byte offset (told about every MiB per walk).
    fn read_to(&mut self, _offset: usize) {}
}

/// The envelope of a file that passed validation, and its warnings.
#[derive(Clone, Debug, Default)]
pub struct Head {
    pub version: String,
    pub exported_at: Option<String>,
    pub exported_by: Option<String>,
    pub source_gateway: Option<String>,
    /// Masked values left out, duplicates merged, references the target must satisfy.
    pub warnings: Vec<FieldError>,
}

/// The file as text: without a byte-order mark, not blank, and UTF-8 (checked a MiB at
/// a time; `read_to` is told how far, so a mapped file can let go behind).
pub fn file_text<'a>(
    bytes: &'a [u8],
    read_to: &mut dyn FnMut(usize),
) -> Result<&'a str, Vec<FieldError>> {
    let bytes = without_bom(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(vec![problem("", Code::Empty, "the file is empty")]);
    }
    let mut start = 0;
    while start < bytes.len() {
        let end = (start + REPORT_EVERY).min(bytes.len());
        match std::str::from_utf8(&bytes[start..end]) {
            Ok(_) => start = end,
            // A character cut by the chunk's end: the next chunk starts at its first byte.
            Err(e) if e.error_len().is_none() && end < bytes.len() && e.valid_up_to() > 0 => {
                start += e.valid_up_to();
            }
            Err(e) => return Err(invalid_utf8(start + e.valid_up_to())),
        }
        read_to(start);
    }
    #[expect(
        unsafe_code,
        reason = "the bytes were checked above, a chunk at a time"
    )]
    // SAFETY: every byte was checked above, chunk by chunk, with no gap between chunks.
    let text = unsafe { std::str::from_utf8_unchecked(bytes) };
    Ok(text)
}

/// Reads and validates the file's `text` (see [`file_text`]): the first pass walks the
/// whole file and reads the lists of `passes[0]`; each later pass reads the lists of its
/// types, walking only those lists. Each valid entity goes to `sink`. On refusal, every
/// problem of the file.
pub fn read_file<S: Sink>(
    text: &str,
    skim: &Skim,
    passes: &[&[EntityKind]],
    sink: &mut S,
) -> Result<Head, Problems> {
    let mut reader = Reader {
        skim,
        first: true,
        envelope: Vec::new(),
        entities_problems: Problems::default(),
        lists: BTreeMap::new(),
        errors_total: 0,
        kept_in_pass: 0,
        warnings_total: 0,
        warnings_kept_in_pass: 0,
        references: Vec::new(),
        twice: HashMap::new(),
        failed: false,
        later: BTreeMap::new(),
        attribution: Attribution::default(),
    };
    let syntax = |e: serde_json::Error| Problems::from(vec![syntax_or_shape(&e)]);
    for (i, kinds) in passes.iter().enumerate() {
        let mut pass = Pass {
            reader: &mut reader,
            sink: &mut *sink,
            kinds,
            text,
            reported: 0,
        };
        if i == 0 {
            walk(text, &mut pass).map_err(syntax)?;
            continue;
        }
        pass.reader.first = false;
        pass.reader.kept_in_pass = 0;
        pass.reader.warnings_kept_in_pass = 0;
        let lists: Vec<(List, Range<usize>)> = pass
            .reader
            .later
            .values()
            .filter(|(list, _)| kinds.contains(&list.kind))
            .cloned()
            .collect();
        for (list, items) in lists {
            let whole = list_span(text, items);
            walk_list(&text[whole], list, &mut pass).map_err(syntax)?;
        }
    }
    reader.finish()
}

/// The span of a list (`[` to `]`) around the span from its first element's start to
/// its last element's end; between them and the brackets there is only white space.
fn list_span(text: &str, items: Range<usize>) -> Range<usize> {
    let bytes = text.as_bytes();
    let open = bytes[..items.start]
        .iter()
        .rposition(|b| *b == b'[')
        .unwrap_or(0);
    let close = bytes[items.end..]
        .iter()
        .position(|b| *b == b']')
        .map_or(text.len(), |i| items.end + i + 1);
    open..close
}

/// RFC 8259 lets a parser ignore a byte-order mark; Windows editors write one.
pub fn without_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

fn invalid_utf8(at: usize) -> Vec<FieldError> {
    vec![problem(
        "",
        Code::InvalidUtf8,
        format!("the file is not UTF-8 text (byte {at})"),
    )]
}

pub(crate) fn syntax_or_shape(e: &serde_json::Error) -> FieldError {
    use serde_json::error::Category;
    let message = e.to_string();
    let duplicate = message
        .strip_prefix("duplicate field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, _)| field.to_owned());
    match e.classify() {
        Category::Data if duplicate.is_some() => problem(
            join("", duplicate.as_deref().unwrap_or_default()),
            Code::DuplicateKey,
            format!("given twice (line {}); keep one", e.line()),
        ),
        Category::Data => problem(
            "",
            Code::InvalidType,
            "the file must be a JSON object with version, exported_at and entities",
        ),
        Category::Eof => problem(
            "",
            Code::Truncated,
            format!(
                "the JSON ends too early (line {}, column {})",
                e.line(),
                e.column()
            ),
        ),
        _ => problem("", Code::InvalidJson, format!("invalid JSON: {e}")),
    }
}

/// What the passes of one read have found so far.
struct Reader<'k> {
    skim: &'k Skim,
    /// The first pass reports the envelope and the structure; later ones only their lists.
    first: bool,
    envelope: Vec<(String, Value)>,
    entities_problems: Problems,
    /// Errors and warnings by list position, so that the file order survives the passes.
    /// Each pass keeps its first [`MAX_LISTED`] errors (a pass reads in file order, so
    /// the file's first ones are among them); the rest are only counted.
    lists: BTreeMap<usize, Found>,
    errors_total: u64,
    kept_in_pass: usize,
    /// Warnings are kept and counted like errors: a file whose every entity earns one
    /// (a masked header, a merged duplicate) costs bounded memory and a bounded answer.
    warnings_total: u64,
    warnings_kept_in_pass: usize,
    /// Server references to entities the file lacks (warnings, reported last).
    references: Vec<FieldError>,
    /// For keys the skim saw twice, by folded key: the first position, its key and the
    /// entity serialised.
    twice: HashMap<(EntityKind, String), (usize, String, String)>,
    failed: bool,
    /// Lists left for a later pass, by position: the span of their elements.
    later: BTreeMap<usize, (List, Range<usize>)>,
    /// ContextForge's discovered prompts and resources, told apart as they are read.
    attribution: Attribution,
}

#[derive(Default)]
struct Found {
    errors: Vec<FieldError>,
    warnings: Vec<FieldError>,
}

impl Reader<'_> {
    fn found(&mut self, position: usize) -> &mut Found {
        self.lists.entry(position).or_default()
    }

    fn error(&mut self, position: usize, error: FieldError) {
        self.errors(position, vec![error]);
    }

    /// Counts `errors`; keeps them while this pass has kept fewer than [`MAX_LISTED`].
    fn errors(&mut self, position: usize, errors: Vec<FieldError>) {
        self.failed = true;
        self.errors_total += errors.len() as u64;
        let room = MAX_LISTED.saturating_sub(self.kept_in_pass);
        if room > 0 && !errors.is_empty() {
            let kept = errors.len().min(room);
            self.kept_in_pass += kept;
            let found = self.found(position);
            found.errors.extend(errors.into_iter().take(kept));
        }
    }

    /// Counts `warnings`; keeps them while this pass has kept fewer than [`MAX_LISTED`].
    fn warnings(&mut self, position: Option<usize>, warnings: Vec<FieldError>) {
        self.warnings_total += warnings.len() as u64;
        let room = MAX_LISTED.saturating_sub(self.warnings_kept_in_pass);
        let kept = warnings.len().min(room);
        if kept == 0 {
            return;
        }
        self.warnings_kept_in_pass += kept;
        let warnings = warnings.into_iter().take(kept);
        match position {
            Some(position) => self.found(position).warnings.extend(warnings),
            None => self.references.extend(warnings),
        }
    }

    /// Validates one element; the entity when it is valid and not a merged duplicate.
    fn entity<E: Entity>(&mut self, list: List, index: usize, raw: &RawValue) -> Option<E> {
        let base = join("/entities", E::KIND.plural());
        let pointer = join(&base, &index.to_string());
        let mut entity = match read_one::<E>(raw, &pointer) {
            Ok((entity, warnings)) => {
                self.warnings(Some(list.position), warnings);
                entity
            }
            Err(errors) => {
                self.errors(list.position, errors);
                return None;
            }
        };
        if let Some(origin) = entity.federation() {
            let message = format!(
                "discovered from gateway `{}`: such items are not imported, its discovery writes them when it connects",
                origin.gateway
            );
            let refused = problem(join(&pointer, "federation"), Code::Federated, message);
            self.error(list.position, refused);
            return None;
        }
        if !self.written_here()
            && let Some(warning) = self.attribution.attribute(self.skim, &mut entity, &pointer)
        {
            self.warnings(Some(list.position), vec![warning]);
        }
        if self.skim.count(E::KIND, entity.key()) > 1 && !self.first_of_twice(list, index, &entity)
        {
            return None;
        }
        if E::KIND == EntityKind::Server {
            self.check_references(index, &entity);
        }
        Some(entity)
    }

    /// True when the file names this project's key fingerprint: one of our exports,
    /// which never carry discovered items (its envelope comes before its entities).
    fn written_here(&self) -> bool {
        self.envelope
            .iter()
            .any(|(name, _)| name == "encryption_key_fingerprint")
    }

    /// True for the first entity with its key (compared folded: names differing only in
    /// case are one key); a later identical one is merged (a warning), a later different
    /// one is an error.
    fn first_of_twice<E: Entity>(&mut self, list: List, index: usize, entity: &E) -> bool {
        let base = join("/entities", E::KIND.plural());
        let text = serde_json::to_string(entity).unwrap_or_default();
        let slot = (E::KIND, fold_key(E::KIND, entity.key()).into_owned());
        let Some((first, first_key, kept)) = self.twice.get(&slot) else {
            let key = entity.key().to_owned();
            self.twice.insert(slot, (index, key, text));
            return true;
        };
        let (first, same) = (*first, *kept == text);
        let case_twin = (*first_key != entity.key()).then(|| first_key.clone());
        let pointer = join(&base, &index.to_string());
        if same {
            let warning = problem(
                &pointer,
                Code::DuplicateMerged,
                format!("same as {base}/{first}: imported once"),
            );
            self.warnings(Some(list.position), vec![warning]);
        } else {
            let field = if matches!(E::KIND, EntityKind::Resource | EntityKind::Root) {
                "uri"
            } else {
                "name"
            };
            let message = match case_twin {
                Some(first_key) => format!(
                    "`{}` differs only in case from `{first_key}` ({base}/{first}): keys are unique regardless of case",
                    entity.key()
                ),
                None => format!(
                    "`{}` is also {base}/{first}, with different fields",
                    entity.key()
                ),
            };
            self.error(
                list.position,
                problem(join(&pointer, field), Code::Duplicate, message),
            );
        }
        false
    }

    /// A server's references to tools, prompts and resources the file does not hold:
    /// the target must already have them.
    fn check_references<E: Entity>(&mut self, index: usize, server: &E) {
        for (kind, keys) in server.links() {
            let field = kind.link_field();
            for (j, key) in keys.iter().enumerate() {
                if !self.skim.contains(kind, key) {
                    let reference = problem(
                        format!("/entities/servers/{index}/{field}/{j}"),
                        Code::ExternalReference,
                        format!("`{key}` is not in the file: it must exist in the target"),
                    );
                    self.warnings(None, vec![reference]);
                }
            }
        }
    }

    /// The envelope's problems first, then each list's in file order; else the head.
    fn finish(self) -> Result<Head, Problems> {
        let mut errors = Vec::new();
        let field = |name: &str, required: bool, errors: &mut Vec<FieldError>| {
            let value = self
                .envelope
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v);
            text_field(value, &join("", name), required, errors)
        };
        let version = field("version", true, &mut errors);
        let exported_at = field("exported_at", true, &mut errors);
        let exported_by = field("exported_by", false, &mut errors);
        let source_gateway = field("source_gateway", false, &mut errors);
        let mut errors = Problems::from(errors);
        errors.append(self.entities_problems);
        let mut warnings = Vec::new();
        let mut listed = 0;
        for found in self.lists.into_values() {
            listed += found.errors.len() as u64;
            errors.extend(found.errors);
            warnings.extend(found.warnings);
        }
        // Errors counted but not kept by their pass.
        errors.total += self.errors_total - listed;
        if !errors.is_empty() {
            return Err(errors);
        }
        warnings.extend(self.references);
        warnings.truncate(MAX_LISTED);
        let unlisted = self.warnings_total - warnings.len() as u64;
        if unlisted > 0 {
            warnings.push(problem(
                "",
                Code::WarningsNotListed,
                format!(
                    "… and {unlisted} more warning(s) not listed ({} in all)",
                    self.warnings_total
                ),
            ));
        }
        Ok(Head {
            version: version.unwrap_or_default(),
            exported_at,
            exported_by,
            source_gateway,
            warnings,
        })
    }
}

fn text_field(
    value: Option<&Value>,
    pointer: &str,
    required: bool,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match value {
        None | Some(Value::Null) if required => {
            errors.push(problem(pointer, Code::Required, "required"));
            None
        }
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if required && s.trim().is_empty() => {
            errors.push(problem(pointer, Code::Required, "must not be empty"));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(problem(pointer, Code::InvalidType, "must be a string"));
            None
        }
    }
}

/// The typed parse first; only an entity that fails it is read again as a `Value`, to
/// list all of its errors.
fn read_one<E: Entity>(
    raw: &RawValue,
    pointer: &str,
) -> Result<(E, Vec<FieldError>), Vec<FieldError>> {
    if !raw.get().trim_start().starts_with('{') {
        return Err(vec![problem(
            pointer,
            Code::InvalidType,
            "must be an object",
        )]);
    }
    if let Ok(mut entity) = serde_json::from_str::<E>(raw.get()) {
        let mut errors = Errors::default();
        entity.validate(pointer, &mut errors);
        let warnings = std::mem::take(&mut errors.warnings);
        return errors.into_result((entity, warnings));
    }
    let value: Value = serde_json::from_str(raw.get())
        .map_err(|e| vec![problem(pointer, Code::InvalidJson, e.to_string())])?;
    parse_entity::<E>(value, pointer)
}

/// One walk of a read: the reader's state, the sink, and the types this walk reads.
struct Pass<'a, 'k, S> {
    reader: &'a mut Reader<'k>,
    sink: &'a mut S,
    kinds: &'a [EntityKind],
    text: &'a str,
    reported: usize,
}

impl<S: Sink> Pass<'_, '_, S> {
    fn deliver<E: Entity>(&mut self, list: List, index: usize, raw: &RawValue) {
        if let Some(entity) = self.reader.entity::<E>(list, index, raw)
            && !self.reader.failed
        {
            self.sink.entity(index, entity);
        }
    }
}

impl<'de, S: Sink> Walker<'de> for Pass<'_, '_, S> {
    fn envelope(&mut self, name: &str, value: Value) {
        if self.reader.first {
            self.reader.envelope.push((name.to_owned(), value));
        }
    }

    fn entities_problem(&mut self, error: FieldError) {
        if self.reader.first {
            self.reader.failed = true;
            self.reader.entities_problems.push(error);
        }
    }

    fn type_problem(&mut self, position: usize, error: FieldError) {
        if self.reader.first {
            self.reader.error(position, error);
        }
    }

    fn list_problem(&mut self, list: List, error: FieldError) {
        self.reader.error(list.position, error);
    }

    fn item(&mut self, list: List, index: usize, raw: &'de RawValue) {
        let at = span(self.text, raw);
        match list.kind {
            kind if !self.kinds.contains(&kind) => {
                let later = self.reader.later.entry(list.position);
                later.or_insert((list, at.clone())).1.end = at.end;
            }
            EntityKind::Tool => self.deliver::<Tool>(list, index, raw),
            EntityKind::Gateway => self.deliver::<Gateway>(list, index, raw),
            EntityKind::Server => self.deliver::<Server>(list, index, raw),
            EntityKind::Prompt => self.deliver::<Prompt>(list, index, raw),
            EntityKind::Resource => self.deliver::<Resource>(list, index, raw),
            EntityKind::Root => self.deliver::<Root>(list, index, raw),
        }
        let offset = at.end;
        if offset >= self.reported + REPORT_EVERY {
            self.reported = offset;
            self.sink.read_to(offset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::skim;

    /// Keys in the order the sink saw them.
    #[derive(Default)]
    struct Seen(Vec<(EntityKind, usize, String)>);

    impl Sink for Seen {
        fn entity<E: Entity>(&mut self, index: usize, entity: E) {
            self.0.push((E::KIND, index, entity.key().to_owned()));
        }
    }

    const SERVERS_FIRST: &str = r#"{"version": "1", "exported_at": "x", "entities": {
        "servers": [ {"name": "s", "tool_ids": ["t"]} , {"name": "s2", "tool_ids": ["gone"]} ],
        "tools": [{"name": "t", "url": "https://t.example.com"}]}}"#;

    #[test]
    fn a_later_pass_reads_only_its_lists_and_sees_what_came_before() {
        let skim = skim(SERVERS_FIRST, &mut |_| {});
        let mut seen = Seen::default();
        let passes: [&[EntityKind]; 2] = [&[EntityKind::Tool], &[EntityKind::Server]];
        let head = read_file(SERVERS_FIRST, &skim, &passes, &mut seen).unwrap();
        let order: Vec<&str> = seen.0.iter().map(|(_, _, k)| k.as_str()).collect();
        assert_eq!(order, ["t", "s", "s2"], "tools first, then the servers");
        assert_eq!(seen.0[2].1, 1, "positions in the file");
        let pointers: Vec<&str> = head.warnings.iter().map(|w| w.pointer.as_str()).collect();
        assert_eq!(pointers, ["/entities/servers/1/tool_ids/0"]);
    }

    #[test]
    fn problems_keep_file_order_across_passes() {
        let text = r#"{"version": "1", "exported_at": "x", "entities": {
            "servers": [{"tool_ids": []}], "roots": 5, "tools": [{"name": "t"}]}}"#;
        let skim = skim(text, &mut |_| {});
        let passes: [&[EntityKind]; 2] = [&[EntityKind::Tool], &[EntityKind::Server]];
        let errors = read_file(text, &skim, &passes, &mut Seen::default()).unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/entities/servers/0/name",
                "/entities/roots",
                "/entities/tools/0/url"
            ]
        );
    }

    #[test]
    fn warnings_past_the_first_thousand_are_counted_not_kept() {
        let tools: Vec<String> = (0..1500)
            .map(|i| format!(r#"{{"name": "t{i}", "url": "https://e.example.com", "headers": {{"X": "*****"}}}}"#))
            .collect();
        let text = format!(
            r#"{{"version": "1", "exported_at": "x", "entities": {{"tools": [{}]}}}}"#,
            tools.join(",")
        );
        let skim = skim(&text, &mut |_| {});
        let passes: [&[EntityKind]; 1] = [&[EntityKind::Tool]];
        let head = read_file(&text, &skim, &passes, &mut Seen::default()).unwrap();
        assert_eq!(head.warnings.len(), MAX_LISTED + 1);
        assert_eq!(head.warnings[0].pointer, "/entities/tools/0/headers/X");
        assert_eq!(head.warnings[999].pointer, "/entities/tools/999/headers/X");
        let last = &head.warnings[MAX_LISTED];
        assert_eq!(last.code, "warnings_not_listed");
        assert!(
            last.message
                .contains("500 more warning(s) not listed (1500 in all)")
        );
    }

    #[test]
    fn the_first_problems_in_file_order_are_listed_and_all_are_counted() {
        // Servers come first in the file but are read in the second pass: the listed
        // problems are still the file's first ones.
        let servers = vec![r#"{"tool_ids": []}"#; 1200].join(",");
        let tools = vec![r#"{"name": "t"}"#; 1500].join(",");
        let passes: [&[EntityKind]; 2] = [&[EntityKind::Tool], &[EntityKind::Server]];
        let read = |lists: String| {
            let text =
                format!(r#"{{"version": "1", "exported_at": "x", "entities": {{{lists}}}}}"#);
            let skim = skim(&text, &mut |_| {});
            read_file(&text, &skim, &passes, &mut Seen::default()).unwrap_err()
        };
        let errors = read(format!(r#""servers": [{servers}], "tools": [{tools}]"#));
        assert_eq!(errors.total, 2700);
        assert_eq!(errors.listed.len(), MAX_LISTED);
        assert_eq!(errors[0].pointer, "/entities/servers/0/name");
        assert_eq!(errors[999].pointer, "/entities/servers/999/name");
        // Tools first in the file: theirs are listed, the servers' only counted.
        let errors = read(format!(r#""tools": [{tools}], "servers": [{servers}]"#));
        assert_eq!(errors.total, 2700);
        assert_eq!(errors.listed.len(), MAX_LISTED);
        assert_eq!(errors[999].pointer, "/entities/tools/999/url");
    }

    #[test]
    fn keys_compare_in_their_normal_form_and_names_regardless_of_case() {
        // Validation trims the key; the skim must count it as the same key, or the
        // trimmed twin would be imported twice (and refused by the store's unique index).
        let trimmed = r#"{"version": "1", "exported_at": "x", "entities": {
            "prompts": [{"name": "greeting", "template": "t"}, {"name": "greeting\u00a0", "template": "t"}],
            "servers": [{"name": "s", "prompt_ids": [" greeting"]}]}}"#;
        let skimmed = skim(trimmed, &mut |_| {});
        let mut seen = Seen::default();
        let head = read_file(trimmed, &skimmed, &[&EntityKind::ALL], &mut seen).unwrap();
        let keys: Vec<&str> = seen.0.iter().map(|(_, _, k)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["greeting", "s"],
            "the twin is merged, the link resolves"
        );
        let codes: Vec<&str> = head.warnings.iter().map(|w| w.code.as_str()).collect();
        assert_eq!(codes, ["duplicate_merged"]);

        let cased = r#"{"version": "1", "exported_at": "x", "entities": {
            "prompts": [{"name": "greeting", "template": "t"}, {"name": "Greeting", "template": "t"}],
            "resources": [{"name": "a", "uri": "docs://A"}, {"name": "a", "uri": "docs://a"}]}}"#;
        let skimmed = skim(cased, &mut |_| {});
        let errors =
            read_file(cased, &skimmed, &[&EntityKind::ALL], &mut Seen::default()).unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            ["/entities/prompts/1/name"],
            "URIs keep their case"
        );
        assert!(
            errors[0]
                .message
                .contains("differs only in case from `greeting`"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn file_text_checks_utf8_across_chunk_boundaries() {
        let mut bytes = vec![b' '; REPORT_EVERY - 1];
        bytes.extend_from_slice("é{}".as_bytes());
        assert!(
            file_text(&bytes, &mut |_| {}).is_ok(),
            "a character cut by a chunk"
        );
        bytes.push(0xff);
        let errors = file_text(&bytes, &mut |_| {}).unwrap_err();
        assert_eq!(errors[0].code, "invalid_utf8");
        assert_eq!(
            file_text(b"  \n", &mut |_| {}).unwrap_err()[0].code,
            "empty"
        );
    }
}
