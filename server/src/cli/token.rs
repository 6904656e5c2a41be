//! `mcpgateway token create|list|revoke`: API tokens, on the local database.

use chrono::{DateTime, Duration, Utc};
use clap::{Args, Subcommand};

use app::entities::Entity;

use crate::{
    auth,
    config::Settings,
    store::{Store, audit::NewAuditEntry, now},
};

/// `token` and its settings flags (which its subcommands take too).
#[derive(Debug, Args)]
pub struct Opts {
    #[command(flatten)]
    pub local: super::Local,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a token; prints it as the last line of stdout (it is shown only once).
    Create(CreateOpts),
    /// List a user's tokens (names and dates, never the tokens).
    List(UserOpts),
    /// Revoke a token by name or id.
    Revoke(RevokeOpts),
}

#[derive(Debug, Args)]
pub struct UserOpts {
    /// The user the tokens belong to.
    #[arg(long)]
    pub email: String,
}

#[derive(Debug, Args)]
pub struct CreateOpts {
    #[command(flatten)]
    pub user: UserOpts,
    /// A name to tell tokens apart (unique per user).
    #[arg(long, default_value = "cli")]
    pub name: String,
    /// Lifetime such as 30d, 12h or 90m; never expires when omitted.
    #[arg(long, value_parser = parse_lifetime)]
    pub expires: Option<Duration>,
    /// Limit the token to this server's MCP endpoint (repeat for more servers): it then
    /// reaches nothing else, the REST API and the admin UI included.
    #[arg(long = "server", value_name = "NAME")]
    pub servers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RevokeOpts {
    #[command(flatten)]
    pub user: UserOpts,
    /// The token's name or id.
    pub token: String,
}

pub async fn run(command: Command, settings: &Settings) -> anyhow::Result<()> {
    let store = super::open_store(settings).await?;
    let result = match command {
        Command::Create(opts) => create(&store, opts).await,
        Command::List(opts) => list(&store, &opts.email).await,
        Command::Revoke(opts) => revoke(&store, opts).await,
    };
    store.close().await;
    result
}

async fn create(store: &Store, opts: CreateOpts) -> anyhow::Result<()> {
    let expires_at = opts.expires.map(|d| now() + d);
    let servers = server_names(store, &opts.servers).await?;
    let (token, plaintext) = auth::create_scoped_api_token(
        store,
        &opts.user.email,
        &opts.name,
        expires_at,
        servers.as_deref(),
    )
    .await?;
    let entry = NewAuditEntry {
        actor: &opts.user.email,
        action: "token.create",
        target_type: Some("api_token"),
        target_name: Some(&token.name),
        ..Default::default()
    };
    store.record_audit(entry).await?;
    eprintln!(
        "Created token {:?} for {} ({}).",
        token.name,
        opts.user.email,
        expiry(token.expires_at)
    );
    println!("{plaintext}");
    Ok(())
}

/// The stored names of the servers given (`None` for none given); every unknown one is
/// named in the error, and no token is made.
async fn server_names(store: &Store, given: &[String]) -> anyhow::Result<Option<Vec<String>>> {
    if given.is_empty() {
        return Ok(None);
    }
    let keys: Vec<&str> = given.iter().map(String::as_str).collect();
    let mut tx = store.begin_snapshot().await?;
    let found = tx
        .entities_by_keys::<app::entities::server::Server>(&keys)
        .await?;
    tx.rollback().await?;
    let fold =
        |k: &str| app::entities::keys::fold_key(app::model::EntityKind::Server, k).into_owned();
    let unknown: Vec<&str> = keys
        .iter()
        .filter(|k| !found.contains_key(&fold(k)))
        .copied()
        .collect();
    if !unknown.is_empty() {
        anyhow::bail!("--server: no server named {}", unknown.join(", "));
    }
    Ok(Some(
        keys.iter()
            .map(|k| found[&fold(k)].key().to_owned())
            .collect(),
    ))
}

async fn list(store: &Store, email: &str) -> anyhow::Result<()> {
    let user = store
        .user_by_email(email)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user with email {email}"))?;
    let at = now();
    let rows: Vec<[String; 5]> = store
        .tokens_of(user.id)
        .await?
        .into_iter()
        .map(|t| {
            let state = if t.revoked_at.is_some() {
                "revoked"
            } else if t.is_active(at) {
                "active"
            } else {
                "expired"
            };
            [
                t.name,
                t.id.to_string(),
                state.to_owned(),
                t.expires_at.map_or("never".to_owned(), date),
                t.last_used_at.map_or("never".to_owned(), date),
            ]
        })
        .collect();
    let header = ["NAME", "ID", "STATE", "EXPIRES", "LAST USED"].map(str::to_owned);
    print!("{}", table(&header, &rows));
    Ok(())
}

/// Columns padded to their widest cell, two spaces apart, so long names never run into
/// the next column.
fn table(header: &[String; 5], rows: &[[String; 5]]) -> String {
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// One date format everywhere in the CLI's tables and messages.
fn date(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

async fn revoke(store: &Store, opts: RevokeOpts) -> anyhow::Result<()> {
    let email = &opts.user.email;
    let user = store
        .user_by_email(email)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user with email {email}"))?;
    anyhow::ensure!(
        store.revoke_token(user.id, &opts.token).await?,
        "{email} has no active token named {:?}",
        opts.token
    );
    let entry = NewAuditEntry {
        actor: email,
        action: "token.revoke",
        target_type: Some("api_token"),
        target_name: Some(&opts.token),
        ..Default::default()
    };
    store.record_audit(entry).await?;
    eprintln!("Revoked token {:?} of {email}.", opts.token);
    Ok(())
}

fn expiry(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "never expires".to_owned(),
        |d| format!("expires {}", date(d)),
    )
}

/// `30d`, `12h`, `90m` or `3600s`.
fn parse_lifetime(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.len().saturating_sub(1);
    let (number, unit) = s.split_at(split);
    let n: i64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a lifetime like 30d, 12h or 90m"))?;
    if n <= 0 {
        return Err("the lifetime must be positive".into());
    }
    match unit {
        "d" => Ok(Duration::days(n)),
        "h" => Ok(Duration::hours(n)),
        "m" => Ok(Duration::minutes(n)),
        "s" => Ok(Duration::seconds(n)),
        _ => Err(format!("`{s}`: the unit must be d, h, m or s")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_pads_each_column_to_its_widest_cell() {
        let header = ["NAME", "ID", "STATE", "EXPIRES", "LAST USED"].map(str::to_owned);
        let long = "a-token-name-longer-than-twenty-four-characters";
        let row = [long, "1", "active", "2026-01-01 10:00 UTC", "never"].map(str::to_owned);
        let text = table(&header, &[row]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with(&format!("{long}  1")), "{text}");
        assert_eq!(lines[0].find("STATE"), lines[1].find("active"), "{text}");
    }

    #[test]
    fn lifetimes_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_lifetime("30d"), Ok(Duration::days(30)));
        assert_eq!(parse_lifetime("12h"), Ok(Duration::hours(12)));
        assert!(parse_lifetime("0d").is_err());
        assert!(parse_lifetime("ten").is_err());
        assert!(parse_lifetime("5y").is_err());
    }
}
