//! Progress of the long commands (#14.7): on a terminal (stderr a pseudo-terminal, via
//! util-linux `script`) `seed --scale`, `import`, `export`, `validate` and `diff` show
//! what they are doing, with whole-number rates and no time left guessed from the first
//! few entities; piped, nothing but the summary.

use std::process::Command;

use crate::common::{TestApp, TestDb, harness};

/// `mcpgateway ARGS` as `harness::cli` runs it, but inside a pseudo-terminal; the
/// terminal's whole output (stdout and stderr, escape sequences included).
fn on_terminal(db: &TestDb, args: &[&str]) -> String {
    terminal_output(in_terminal(harness::cli(db), args).output().unwrap())
}

/// `base ARGS` in a pseudo-terminal: util-linux `script` with `base`'s environment.
#[expect(
    clippy::needless_pass_by_value,
    reason = "called with a fresh `Command`"
)]
fn in_terminal(base: Command, args: &[&str]) -> Command {
    let mut line = base.get_program().to_string_lossy().into_owned();
    for arg in args {
        line.push_str(&format!(" '{arg}'"));
    }
    let mut cmd = Command::new("script");
    cmd.env_clear().env("TERM", "xterm");
    for (key, value) in base.get_envs() {
        if let Some(value) = value {
            cmd.env(key, value);
        }
    }
    if let Some(dir) = base.get_current_dir() {
        cmd.current_dir(dir);
    }
    cmd.args(["-qfec", &line, "/dev/null"]);
    cmd
}

#[expect(
    clippy::needless_pass_by_value,
    reason = "called with a fresh `Output`"
)]
fn terminal_output(out: std::process::Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    text
}

/// Every rate shown (`…/s`) is a whole number: `1520/s`, never `1520.1234/s`.
fn assert_whole_rates(text: &str) {
    for (at, _) in text.match_indices("/s") {
        let number: String = text[..at]
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        assert!(!number.contains('.'), "a rate with decimals: {text}");
    }
}

#[test]
fn seed_import_and_export_show_progress_on_a_terminal() {
    let db = TestDb::sqlite();
    let seeded = on_terminal(&db, &["seed", "--scale", "2000"]);
    assert!(seeded.contains("seeding"), "{seeded}");
    assert!(seeded.contains("/2,000 entities"), "{seeded}");
    assert!(seeded.contains("2000 created"), "{seeded}");
    assert_whole_rates(&seeded);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.json");
    let file = file.to_str().unwrap();
    let exported = on_terminal(&db, &["export", "--out", file]);
    assert!(exported.contains("exporting"), "{exported}");
    let validated = on_terminal(&db, &["validate", file]);
    assert!(validated.contains("checking"), "{validated}");
    let compared = on_terminal(&db, &["diff", file]);
    assert!(compared.contains("comparing"), "{compared}");

    let target = TestDb::sqlite();
    let imported = on_terminal(&target, &["import", file]);
    assert!(imported.contains("/2,000 entities"), "{imported}");
    assert_whole_rates(&imported);
    // The first frames come before any rate is known: no time left is guessed from them.
    let first = &imported[..imported.find("/2,000 entities").unwrap() + 40];
    assert!(!first.contains(" left"), "{imported}");
}

#[test]
fn piped_the_long_commands_print_no_progress() {
    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.json");
    let file = file.to_str().unwrap();
    let target = TestDb::sqlite();
    for (db, args) in [
        (&db, &["seed", "--scale", "300"][..]),
        (&db, &["export", "--out", file]),
        (&target, &["import", file]),
        (&db, &["validate", file]),
        (&target, &["diff", file]),
    ] {
        let out = harness::cli(db).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The summary (export writes it to stderr), never a bar, spinner or escape sequence.
        for progress in [
            "\x1b",
            "\r",
            "entities",
            "seeding",
            "importing",
            "exporting",
            "checking",
            "comparing",
        ] {
            assert!(!stderr.contains(progress), "{args:?}: {stderr}");
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains('\x1b'), "{args:?}: {stdout}");
    }
}

#[tokio::test]
async fn a_remote_import_shows_the_bytes_uploaded_then_the_entities() {
    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.json");
    let path = file.to_str().unwrap();
    for args in [&["seed", "--scale", "1000"][..], &["export", "--out", path]] {
        assert!(
            harness::cli(&db)
                .args(args)
                .output()
                .unwrap()
                .status
                .success()
        );
    }
    let size = indicatif::HumanBytes(std::fs::metadata(&file).unwrap().len()).to_string();
    let target = TestApp::spawn(TestDb::sqlite()).await;
    let token = target.admin_token().await;
    // An empty local database: what is shown comes from the gateway.
    let remote_cli = |args: &[&str]| {
        let mut cli = harness::cli(&TestDb::sqlite());
        cli.env("MCPGATEWAY_URL", &target.base)
            .env("MCPGATEWAY_BEARER_TOKEN", &token);
        in_terminal(cli, args)
    };
    let cmd = remote_cli(&["import", path]);
    let out = tokio::process::Command::from(cmd).output().await.unwrap();
    let shown = terminal_output(out);
    assert!(shown.contains("uploading"), "{shown}");
    assert!(shown.contains(&format!("/{size}")), "{size}: {shown}");
    assert!(!shown.contains("0/0 entities"), "{shown}");
    assert!(shown.contains("Created 400 new tools"), "{shown}");
    assert_whole_rates(&shown);

    let again = dir.path().join("again.json");
    let cmd = remote_cli(&["export", "--out", again.to_str().unwrap()]);
    let out = tokio::process::Command::from(cmd).output().await.unwrap();
    let shown = terminal_output(out);
    assert!(shown.contains("exporting"), "{shown}");
    assert!(shown.contains("Exported 1000 total items"), "{shown}");
}
