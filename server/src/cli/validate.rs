//! `mcpgateway validate FILE`: check an export file offline, no database needed.

use std::path::PathBuf;

use app::transfer::parse_file;
use clap::Args;

use crate::transfer::input::Input;

#[derive(Debug, Args)]
pub struct Opts {
    /// The export file to check (`-` for standard input).
    pub file: PathBuf,
}

/// Prints every problem as `pointer: message` and fails, or a summary with warnings.
pub fn run(opts: Opts) -> anyhow::Result<()> {
    let bytes = read_input(&opts.file)?;
    match parse_file(bytes.bytes()) {
        Ok(file) => {
            for warning in &file.warnings {
                eprintln!("warning: {warning}");
            }
            let counts: Vec<String> = file
                .entities
                .counts()
                .iter()
                .map(|(k, n)| format!("{n} {}", k.plural()))
                .collect();
            println!(
                "{} is valid: {} entities ({}).",
                opts.file.display(),
                file.entities.total(),
                counts.join(", ")
            );
            Ok(())
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            anyhow::bail!(
                "{} is not a valid export file: {} problem(s)",
                opts.file.display(),
                errors.len()
            )
        }
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
    Input::open(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
}
