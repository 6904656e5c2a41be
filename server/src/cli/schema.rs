//! `mcpgateway schema`: the JSON Schema of the export file, generated from the Rust types.

pub fn run() -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(&app::transfer::export_file_schema())?
    );
    Ok(())
}
