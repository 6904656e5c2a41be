//! The bytes of an import file: held in memory, or a file mapped into memory.
//!
//! A mapped file is read in passes from start to end; after each stretch the import
//! lets go of the pages it has read ([`Input::release_before`]), so a 100 MB file costs
//! a few megabytes of resident memory, not 100. The file must not be truncated while
//! it is mapped: the CLI maps the user's file, REST and jobs map spool files of their own.

use std::{fs::File, io, ops::Range, path::Path, sync::Arc};

use memmap2::{Mmap, UncheckedAdvice};

/// What an import reads: cheap to clone (shared), `Send`, and a plain `&[u8]` to parse.
#[derive(Clone)]
pub struct Input {
    backing: Arc<Backing>,
    /// The part of the backing bytes that is the file (a wrapper's `import_data`).
    range: Range<usize>,
}

enum Backing {
    Memory(Vec<u8>),
    Mapped(Mmap),
    /// An empty file (a zero-length mapping is refused by the OS).
    Empty,
}

impl Input {
    /// Maps the file at `path` for reading.
    pub fn open(path: &Path) -> io::Result<Input> {
        Input::map(&File::open(path)?)
    }

    /// Maps an open file for reading.
    pub fn map(file: &File) -> io::Result<Input> {
        if file.metadata()?.len() == 0 {
            return Ok(Input::from(Vec::new()));
        }
        #[expect(
            unsafe_code,
            reason = "a file mapping sees changes others make to the file"
        )]
        // SAFETY: the mapping is read-only and private; callers map files nobody
        // truncates while the import runs (see the module documentation).
        let map = unsafe { Mmap::map(file)? };
        let _ = map.advise(memmap2::Advice::Sequential);
        let range = 0..map.len();
        Ok(Input {
            backing: Arc::new(Backing::Mapped(map)),
            range,
        })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        let all: &[u8] = match &*self.backing {
            Backing::Memory(v) => v,
            Backing::Mapped(m) => m,
            Backing::Empty => &[],
        };
        &all[self.range.clone()]
    }

    pub fn len(&self) -> usize {
        self.range.len()
    }

    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }

    /// The part `range` of this input (offsets into [`Input::bytes`]), sharing its backing.
    pub fn slice(&self, range: Range<usize>) -> Input {
        let start = self.range.start + range.start.min(self.len());
        let end = self.range.start + range.end.min(self.len());
        Input {
            backing: self.backing.clone(),
            range: start..end.max(start),
        }
    }

    /// The pages before `offset` (into [`Input::bytes`]) have been read: a mapped file
    /// drops them from memory (they are read from the file again if needed).
    pub fn release_before(&self, offset: usize) {
        let Backing::Mapped(map) = &*self.backing else {
            return;
        };
        let page = page_size();
        let end = (self.range.start + offset).min(map.len()) / page * page;
        if end == 0 {
            return;
        }
        #[expect(
            unsafe_code,
            reason = "memmap2 marks MADV_DONTNEED as unchecked advice"
        )]
        // SAFETY: a private read-only file mapping: dropped pages are read again from
        // the file on the next access, so no byte the parser sees changes.
        let _ = unsafe { map.unchecked_advise_range(UncheckedAdvice::DontNeed, 0, end) };
    }
}

fn page_size() -> usize {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        #[expect(unsafe_code, reason = "sysconf is a C function")]
        // SAFETY: sysconf has no preconditions.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(size).unwrap_or(4096).max(1)
    })
}

impl From<Vec<u8>> for Input {
    fn from(bytes: Vec<u8>) -> Input {
        let range = 0..bytes.len();
        let backing = if bytes.is_empty() {
            Backing::Empty
        } else {
            Backing::Memory(bytes)
        };
        Input {
            backing: Arc::new(backing),
            range,
        }
    }
}

impl From<&[u8]> for Input {
    fn from(bytes: &[u8]) -> Input {
        Input::from(bytes.to_vec())
    }
}

impl<const N: usize> From<&[u8; N]> for Input {
    fn from(bytes: &[u8; N]) -> Input {
        Input::from(bytes.as_slice())
    }
}

impl From<&Vec<u8>> for Input {
    fn from(bytes: &Vec<u8>) -> Input {
        Input::from(bytes.as_slice())
    }
}

impl From<&Input> for Input {
    fn from(input: &Input) -> Input {
        input.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_mapped_file_reads_the_same_after_its_pages_are_released() {
        let mut file = tempfile::tempfile().unwrap();
        let content: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        file.write_all(&content).unwrap();
        let input = Input::map(&file).unwrap();
        assert_eq!(input.bytes(), &content[..]);
        input.release_before(input.len() / 2);
        assert_eq!(
            input.bytes(),
            &content[..],
            "released pages read back from the file"
        );
        let part = input.slice(4..12);
        assert_eq!(part.bytes(), &content[4..12]);
        part.release_before(8);
        assert_eq!(part.bytes(), &content[4..12]);
    }

    #[test]
    fn empty_inputs_are_empty() {
        let file = tempfile::tempfile().unwrap();
        assert!(Input::map(&file).unwrap().is_empty());
        assert!(Input::from(Vec::new()).bytes().is_empty());
    }
}
