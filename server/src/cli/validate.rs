//! `mcpgateway validate FILE`: check an export file offline, no database needed.

use std::path::PathBuf;

use app::{
    entities::Entity,
    model::EntityKind,
    transfer::{Sink, file_text, read_file, skim},
    validation::{Code, FieldError, Problems},
};
use clap::Args;

use crate::transfer::input::Input;

#[derive(Debug, Args)]
pub struct Opts {
    /// The export file to check (`-` for standard input).
    pub file: PathBuf,
}

/// Prints every problem as `pointer: message` and fails, or a summary with warnings.
/// The file is read as an import reads it, one entity at a time (nothing is kept).
#[expect(
    clippy::needless_pass_by_value,
    reason = "every subcommand's `run` takes its `Opts` as `Command` hands them over"
)]
pub fn run(opts: Opts) -> anyhow::Result<()> {
    let input = read_input(&opts.file)?;
    let checking = super::progress::Progress::spinner("checking", opts.file.display().to_string());
    let checked = check(&input);
    drop(checking);
    match checked {
        Ok((warnings, counts)) => {
            for warning in &warnings {
                eprintln!("warning: {warning}");
            }
            let total: usize = counts.iter().map(|(_, n)| n).sum();
            let counts: Vec<String> = counts
                .iter()
                .map(|(k, n)| format!("{n} {}", k.plural()))
                .collect();
            println!(
                "{} is valid: {total} entities ({}).",
                opts.file.display(),
                counts.join(", ")
            );
            Ok(())
        }
        Err(errors) => {
            super::eprint_problems(&errors);
            anyhow::bail!(
                "{} is not a valid export file: {} problem(s)",
                opts.file.display(),
                errors.total
            )
        }
    }
}

/// Entities per type.
type Counts = Vec<(EntityKind, usize)>;

/// The warnings of a valid file and its entities per type (merged duplicates once).
fn check(input: &Input) -> Result<(Vec<FieldError>, Counts), Problems> {
    let release = &mut |offset| input.release_before(offset);
    let text = file_text(input.bytes(), release)?;
    let skim = skim(text, release);
    let mut count = Count {
        input,
        counts: EntityKind::ALL.map(|k| (k, 0)).to_vec(),
    };
    let head = read_file(text, &skim, &[&EntityKind::ALL], &mut count)?;
    let mut warnings = head.warnings;
    warnings.extend(check_version(&head.version).map_err(|e| vec![e])?);
    Ok((warnings, count.counts))
}

/// The MCP protocol versions, which ContextForge writes as a file's `version` (and so
/// do we): the format is the same under each.
const KNOWN_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// `validate` is the strict check: a version is a date, and one we do not know is
/// worth a warning. (An import stays as lenient as ContextForge's: any non-empty version.)
fn check_version(version: &str) -> Result<Option<FieldError>, FieldError> {
    let problem = |code: Code, message: String| FieldError {
        pointer: "/version".into(),
        code,
        message,
    };
    if chrono::NaiveDate::parse_from_str(version, "%Y-%m-%d").is_err() {
        return Err(problem(
            Code::Invalid,
            format!("`{version}` is not a format version: one is a date such as 2025-11-25"),
        ));
    }
    Ok((!KNOWN_VERSIONS.contains(&version)).then(|| {
        problem(
            Code::UnknownVersion,
            format!(
                "`{version}` is not a version this gateway knows ({}); the file is read as the current format",
                KNOWN_VERSIONS.join(", ")
            ),
        )
    }))
}

/// A [`Sink`] that counts entities per type.
struct Count<'a> {
    input: &'a Input,
    counts: Counts,
}

impl Sink for Count<'_> {
    fn entity<E: Entity>(&mut self, _index: usize, _entity: E) {
        if let Some((_, n)) = self.counts.iter_mut().find(|(k, _)| *k == E::KIND) {
            *n += 1;
        }
    }

    fn read_to(&mut self, offset: usize) {
        self.input.release_before(offset);
    }
}

/// The file mapped into memory, or standard input for `-` (read whole), with a clear
/// message when unreadable.
pub(crate) fn read_input(path: &std::path::Path) -> anyhow::Result<Input> {
    use std::io::Read;
    if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes)?;
        return Ok(Input::from(bytes));
    }
    anyhow::ensure!(
        !path.is_dir(),
        "cannot read {}: it is a directory; name an export file in it",
        path.display()
    );
    Input::open(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
}
