//! Export and import: the one service the CLI, the REST API and the UI call.

pub mod export;
pub mod import;
pub mod input;
pub mod jobs;
pub mod scan;
pub mod selection;
pub mod spool;
