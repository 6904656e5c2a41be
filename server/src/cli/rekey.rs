//! `mcpgateway rekey IN --from OLD --to NEW --out OUT`: re-encrypt an export file's
//! credentials offline, without a database. Everything else in the file is kept as is.

use std::path::PathBuf;

use app::{
    entities::tool::HEADER_ENVELOPE,
    transfer::parse_file,
    validation::{Code, FieldError, join},
};
use clap::Args;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::{config::MIN_SECRET_LEN, crypto::Cipher};

#[derive(Debug, Args)]
pub struct Opts {
    /// The export file to re-encrypt (`-` for standard input).
    pub input: PathBuf,
    /// The secret the file's credentials are encrypted with now.
    #[arg(
        long,
        value_name = "OLD",
        env = "MCPGATEWAY_REKEY_FROM",
        hide_env_values = true,
        required_unless_present = "from_file"
    )]
    pub from: Option<String>,
    /// Read --from from this file instead (its first line).
    #[arg(long, value_name = "PATH")]
    pub from_file: Option<PathBuf>,
    /// The secret to encrypt them with instead (the target gateway's AUTH_ENCRYPTION_SECRET).
    #[arg(
        long,
        value_name = "NEW",
        env = "MCPGATEWAY_REKEY_TO",
        hide_env_values = true,
        required_unless_present = "to_file"
    )]
    pub to: Option<String>,
    /// Read --to from this file instead (its first line).
    #[arg(long, value_name = "PATH")]
    pub to_file: Option<PathBuf>,
    /// Where to write the result (`-` for standard output).
    #[arg(long, value_name = "OUT")]
    pub out: PathBuf,
    /// Replace the output file when it exists (without it: asked on a terminal, refused otherwise).
    #[arg(long)]
    pub force: bool,
}

/// The two secrets; the new one as long as `serve` requires of AUTH_ENCRYPTION_SECRET
/// (a file rekeyed to a shorter one could be imported by no gateway).
fn secrets(opts: &Opts) -> anyhow::Result<(SecretString, SecretString)> {
    let missing = |flag: &str| anyhow::anyhow!("pass {flag}, {flag}-file or its variable");
    let from = super::secret(opts.from.clone(), opts.from_file.as_deref())?
        .ok_or_else(|| missing("--from"))?;
    let to =
        super::secret(opts.to.clone(), opts.to_file.as_deref())?.ok_or_else(|| missing("--to"))?;
    let len = to.expose_secret().chars().count();
    anyhow::ensure!(
        len >= MIN_SECRET_LEN,
        "--to: must be at least {MIN_SECRET_LEN} characters (got {len}), as AUTH_ENCRYPTION_SECRET must; \
         generate one with `openssl rand -base64 32`"
    );
    Ok((from, to))
}

#[expect(
    clippy::needless_pass_by_value,
    reason = "every subcommand's `run` takes its `Opts` as `Command` hands them over"
)]
pub fn run(opts: Opts) -> anyhow::Result<()> {
    let (from, to) = secrets(&opts)?;
    super::may_write(&opts.out, opts.force)?;
    let bytes = super::validate::read_input(&opts.input)?;
    if let Err(errors) = parse_file(bytes.bytes()) {
        super::eprint_problems(&errors);
        anyhow::bail!(
            "{} is not a valid export file: {} problem(s)",
            opts.input.display(),
            errors.total
        );
    }
    let mut file: Value = serde_json::from_slice(bytes.bytes())?;
    let (from, to) = (Cipher::new(&from), Cipher::new(&to));
    let rekeying = super::progress::Progress::spinner("re-encrypting", "credentials");
    let (count, errors) = rekey_file(&mut file, &from, &to);
    drop(rekeying);
    if !errors.is_empty() {
        report(&errors);
        anyhow::bail!(
            "{} credential(s) cannot be decrypted with --from; nothing was written",
            errors.len()
        );
    }
    // The file now names the new key (an importer checks it before decrypting).
    if let Some(envelope) = file.as_object_mut() {
        envelope.insert("encryption_key_fingerprint".into(), to.fingerprint().into());
    }
    let json = serde_json::to_vec_pretty(&file)?;
    if opts.out.as_os_str() == "-" {
        use std::io::Write;
        std::io::stdout().write_all(&json)?;
    } else {
        std::fs::write(&opts.out, json)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", opts.out.display()))?;
    }
    eprintln!(
        "Re-encrypted {count} credential(s) from key {} to key {}.",
        from.fingerprint(),
        to.fingerprint()
    );
    Ok(())
}

fn report(errors: &[FieldError]) {
    for e in errors {
        eprintln!("{e}");
    }
}

/// Re-encrypts every `auth_value`, `auth_query_params` value and header envelope of
/// tools and gateways.
fn rekey_file(file: &mut Value, from: &Cipher, to: &Cipher) -> (usize, Vec<FieldError>) {
    let mut count = 0;
    let mut errors = Vec::new();
    for plural in ["tools", "gateways"] {
        let Some(list) = file["entities"]
            .get_mut(plural)
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for (i, entity) in list.iter_mut().enumerate() {
            let base = format!("/entities/{plural}/{i}");
            let mut blobs: Vec<(String, &mut Value)> = Vec::new();
            if let Some(obj) = entity.as_object_mut() {
                for (key, value) in obj.iter_mut() {
                    match (key.as_str(), value) {
                        ("auth_value", v @ Value::String(_)) => {
                            blobs.push((format!("{base}/auth_value"), v))
                        }
                        ("auth_query_params", Value::Object(params)) => {
                            for (p, v) in params.iter_mut().filter(|(_, v)| v.is_string()) {
                                blobs.push((join(&format!("{base}/auth_query_params"), p), v));
                            }
                        }
                        ("headers", Value::Object(headers)) => {
                            for (h, v) in headers.iter_mut() {
                                if let Some(blob @ Value::String(_)) = v.get_mut(HEADER_ENVELOPE) {
                                    blobs.push((join(&format!("{base}/headers"), h), blob));
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            for (pointer, blob) in blobs {
                match from.decrypt(blob.as_str().unwrap_or_default()) {
                    Ok(plain) => {
                        *blob = Value::String(to.encrypt(&plain));
                        count += 1;
                    }
                    Err(e) => errors.push(FieldError {
                        pointer,
                        code: Code::Undecryptable,
                        message: format!("the credential {e}"),
                    }),
                }
            }
        }
    }
    (count, errors)
}
