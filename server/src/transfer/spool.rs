//! Spool files: an upload, or a job's stored file, written as it arrives to an unnamed
//! temporary file and then mapped ([`Input::map`]), so it is never held in memory whole.
//!
//! The file is unlinked from the start (`tempfile::tempfile`): nothing is left behind when
//! the process stops, and the space is freed once the last [`Input`] over it is dropped
//! (a mapping keeps an unlinked file alive).

use std::io;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncWriteExt, BufWriter};

use super::input::Input;

/// How much a spool gathers before each write to its file.
const WRITE_BUFFER: usize = 256 * 1024;
/// How much of an input is hashed before its pages are let go.
const HASH_WINDOW: usize = 1 << 20;

/// A temporary file being written.
pub struct Spool {
    writer: BufWriter<tokio::fs::File>,
    len: u64,
}

impl Spool {
    /// An empty spool in the temporary directory (`TMPDIR`).
    pub fn new() -> io::Result<Spool> {
        let file = tokio::fs::File::from_std(tempfile::tempfile()?);
        Ok(Spool {
            writer: BufWriter::with_capacity(WRITE_BUFFER, file),
            len: 0,
        })
    }

    /// Appends `bytes`.
    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes).await?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole file, mapped.
    pub async fn finish(mut self) -> io::Result<Input> {
        self.writer.flush().await?;
        let file = self.writer.into_inner().into_std().await;
        Input::map(&file)
    }
}

/// The hex SHA-256 of `input`, read a window at a time (each window's pages let go after).
pub fn sha256_hex(input: &Input) -> String {
    let mut hasher = Sha256::new();
    let bytes = input.bytes();
    let mut offset = 0;
    while offset < bytes.len() {
        let end = (offset + HASH_WINDOW).min(bytes.len());
        hasher.update(&bytes[offset..end]);
        input.release_before(end);
        offset = end;
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_spool_maps_what_was_written_and_hashes_like_the_bytes() {
        let content: Vec<u8> = (0..700_000u32).flat_map(|i| i.to_be_bytes()).collect();
        let mut spool = Spool::new().unwrap();
        for piece in content.chunks(65_537) {
            spool.write(piece).await.unwrap();
        }
        assert_eq!(spool.len(), content.len() as u64);
        let input = spool.finish().await.unwrap();
        assert_eq!(input.bytes(), &content[..]);
        assert_eq!(sha256_hex(&input), crate::crypto::sha256_hex(&content));
        assert_eq!(input.bytes(), &content[..], "still readable after hashing");
        assert!(Spool::new().unwrap().finish().await.unwrap().is_empty());
    }
}
