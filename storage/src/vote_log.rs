//! The validator's vote log: every vote and proposal it signed, in a file of
//! its own beside its key, outside the data directory.
//!
//! A vote is appended and synced before it is sent, so the log always
//! holds at least what the network has seen from this validator. It lives
//! apart from the stores on purpose: a data directory restored from an
//! older copy (a backup, a snapshot, another machine's disk) carries old
//! vote records, and a validator that trusted them could sign a vote that
//! conflicts with one it already sent. The log is the one record that wins.
//!
//! The file is locked while open (two processes cannot write one log) and
//! is a sequence of frames:
//!
//! ```text
//! height u64 LE | length u32 LE | record (length bytes) | check: first 8 bytes of blake3(height | length | record)
//! ```
//!
//! A frame cut short at the end of the file (the process died while
//! writing it) was never synced, so its vote was never sent: it is cut off
//! on open. A frame that is whole but does not check, with more after it,
//! is damage: the log refuses to open rather than forget a vote.
//! [`VoteLog::prune`] rewrites the file without the old heights (a new file
//! synced, then renamed over the old one).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The largest record a frame may hold.
pub const MAX_RECORD: usize = 4096;
const HEAD: usize = 12;
const CHECK: usize = 8;

/// The vote log could not be used.
#[derive(Debug, Error)]
pub enum VoteLogError {
    /// The file could not be read, written or synced.
    #[error("vote log {path}: {source}")]
    Io {
        /// The log.
        path: PathBuf,
        /// What the file system reported.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the log.
    #[error("vote log {path} is in use by another process: two processes must never sign with one validator key; stop the other one")]
    Locked {
        /// The log.
        path: PathBuf,
    },
    /// A frame in the middle of the log does not check.
    #[error("vote log {path} is damaged at byte {offset}: a record there does not match its checksum. This validator will not sign until it is fixed; restore the file, or move it aside only if you are certain this key signed nothing since the damage")]
    Damaged {
        /// The log.
        path: PathBuf,
        /// Where the bad frame starts.
        offset: u64,
    },
    /// A record larger than [`MAX_RECORD`].
    #[error("a vote record of {0} bytes is larger than {MAX_RECORD}")]
    TooLarge(usize),
}

/// Records with their heights, in the order written.
pub type Records = Vec<(u64, Vec<u8>)>;

/// An open, locked vote log.
#[derive(Debug)]
pub struct VoteLog {
    path: PathBuf,
    file: File,
}

fn check(height: u64, record: &[u8]) -> [u8; CHECK] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&height.to_le_bytes());
    hasher.update(&(record.len() as u32).to_le_bytes());
    hasher.update(record);
    let mut out = [0u8; CHECK];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..CHECK]);
    out
}

fn frame(height: u64, record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD + record.len() + CHECK);
    out.extend_from_slice(&height.to_le_bytes());
    out.extend_from_slice(&(record.len() as u32).to_le_bytes());
    out.extend_from_slice(record);
    out.extend_from_slice(&check(height, record));
    out
}

/// The records of `bytes` (the log at `path`) and the length of its whole
/// frames; an error for a damaged frame that is not the last.
fn parse(path: &Path, bytes: &[u8]) -> Result<(Records, usize), VoteLogError> {
    frames(bytes).map_err(|offset| VoteLogError::Damaged {
        path: path.to_path_buf(),
        offset,
    })
}

/// As [`parse`]; Err(offset) for the damaged frame.
fn frames(bytes: &[u8]) -> Result<(Records, usize), u64> {
    let mut records = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= HEAD {
        let height = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
        let length = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap_or_default());
        let length = length as usize;
        let end = at + HEAD + length + CHECK;
        if length > MAX_RECORD || end > bytes.len() {
            // A torn last frame, or garbage: which one depends on whether
            // anything could follow it.
            return if length > MAX_RECORD && bytes.len() - at > HEAD + MAX_RECORD + CHECK {
                Err(at as u64)
            } else {
                Ok((records, at))
            };
        }
        let record = &bytes[at + HEAD..at + HEAD + length];
        if bytes[end - CHECK..end] != check(height, record) {
            return if end == bytes.len() {
                Ok((records, at))
            } else {
                Err(at as u64)
            };
        }
        records.push((height, record.to_vec()));
        at = end;
    }
    Ok((records, at))
}

impl VoteLog {
    /// Opens (or creates) the log at `path` and locks it; returns it with
    /// every record in it (height and bytes, in the order written).
    pub fn open(path: &Path) -> Result<(VoteLog, Records), VoteLogError> {
        let io = |source| VoteLogError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(VoteLogError::Locked {
                    path: path.to_path_buf(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let (records, whole) = parse(path, &bytes)?;
        if whole < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                cut = bytes.len() - whole,
                "vote log: cutting off a record that was not finished (never sent)"
            );
            file.set_len(whole as u64).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        let log = VoteLog {
            path: path.to_path_buf(),
            file,
        };
        Ok((log, records))
    }

    /// Appends a record of `height`, synced: on disk when this returns.
    pub fn append(&mut self, height: u64, record: &[u8]) -> Result<(), VoteLogError> {
        if record.len() > MAX_RECORD {
            return Err(VoteLogError::TooLarge(record.len()));
        }
        let io = |source| VoteLogError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&frame(height, record)).map_err(io)?;
        self.file.sync_data().map_err(io)
    }

    /// Drops the records below `height`: writes the others to a new file,
    /// syncs it and renames it over the log (a crash leaves the old log or
    /// the new one, whole).
    pub fn prune(&mut self, below: u64) -> Result<(), VoteLogError> {
        let io = |source| VoteLogError::Io {
            path: self.path.clone(),
            source,
        };
        let mut bytes = Vec::new();
        let mut reader = File::open(&self.path).map_err(io)?;
        reader.read_to_end(&mut bytes).map_err(io)?;
        let (records, _) = parse(&self.path, &bytes)?;
        let kept: Vec<u8> = records
            .iter()
            .filter(|(height, _)| *height >= below)
            .flat_map(|(height, record)| frame(*height, record))
            .collect();
        let fresh = self.path.with_extension("new");
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .truncate(false)
            .open(&fresh)
            .map_err(io)?;
        file.set_len(0).map_err(io)?;
        file.write_all(&kept).map_err(io)?;
        file.sync_all().map_err(io)?;
        file.try_lock().map_err(|_| VoteLogError::Locked {
            path: fresh.clone(),
        })?;
        std::fs::rename(&fresh, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        self.file = file;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_reopen_and_prune_keeps_the_new_heights() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("votes.log");
        {
            let (mut log, records) = VoteLog::open(&path).expect("open");
            assert!(records.is_empty());
            log.append(3, b"a").expect("append");
            log.append(3, b"b").expect("append");
            log.append(9, b"c").expect("append");
            // Locked while open.
            assert!(matches!(
                VoteLog::open(&path),
                Err(VoteLogError::Locked { .. })
            ));
            log.prune(4).expect("prune");
            log.append(10, b"d").expect("append after prune");
            assert!(matches!(
                VoteLog::open(&path),
                Err(VoteLogError::Locked { .. })
            ));
        }
        let (_, records) = VoteLog::open(&path).expect("reopen");
        assert_eq!(records, vec![(9, b"c".to_vec()), (10, b"d".to_vec())]);
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_damage_in_the_middle_refuses() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("votes.log");
        {
            let (mut log, _) = VoteLog::open(&path).expect("open");
            log.append(1, b"one").expect("append");
            log.append(2, b"two").expect("append");
        }
        let whole = std::fs::read(&path).expect("read");
        // Cut in the middle of the second frame: the first one is kept.
        for cut in [whole.len() - 1, whole.len() - 9, whole.len() - 20] {
            std::fs::write(&path, &whole[..cut]).expect("write");
            let (mut log, records) = VoteLog::open(&path).expect("torn tail");
            assert_eq!(records, vec![(1, b"one".to_vec())]);
            log.append(2, b"again").expect("append");
            drop(log);
            let (_, records) = VoteLog::open(&path).expect("reopen");
            assert_eq!(records.len(), 2, "cut at {cut}");
        }
        // A flipped byte in the first frame, with a whole frame after it.
        let mut bad = whole.clone();
        bad[13] ^= 1;
        std::fs::write(&path, &bad).expect("write");
        assert!(matches!(
            VoteLog::open(&path),
            Err(VoteLogError::Damaged { offset: 0, .. })
        ));
        // The last frame's checksum is off: a torn write, cut off.
        let mut last = whole;
        let n = last.len();
        last[n - 1] ^= 1;
        std::fs::write(&path, &last).expect("write");
        let (_, records) = VoteLog::open(&path).expect("torn checksum");
        assert_eq!(records, vec![(1, b"one".to_vec())]);
    }
}
