//! Key files: a JSON object with the secret key, and the public key and
//! address derived from it (so a reader can check the file is whole).
//! Written with mode 0600, through a temporary file and a rename, so a
//! crash never leaves half a key.
//!
//! ```json
//! { "address": "0x…", "public_key": "0x…", "secret_key": "0x…" }
//! ```

use anyhow::{bail, Context};
use atoll_primitives::KeyPair;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    address: String,
    public_key: String,
    secret_key: String,
}

/// A new key from the operating system's randomness.
pub fn generate() -> KeyPair {
    use rand::RngCore;
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    KeyPair::from_seed(seed)
}

/// Writes `key` to `path`, refusing to overwrite an existing file.
pub fn write(path: &Path, key: &KeyPair) -> anyhow::Result<()> {
    if path.exists() {
        bail!("{} already exists; not overwriting a key", path.display());
    }
    let file = KeyFile {
        address: key.address().to_string(),
        public_key: format!("0x{}", hex::encode(key.public().0)),
        secret_key: format!("0x{}", hex::encode(key.seed())),
    };
    let text = serde_json::to_string_pretty(&file)? + "\n";
    write_private(path, text.as_bytes())
}

/// Writes `bytes` to `path` with mode 0600, atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    out.write_all(bytes)?;
    out.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Reads the key at `path`, checking that its public key and address match
/// its secret key.
pub fn read(path: &Path) -> anyhow::Result<KeyPair> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    let file: KeyFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an atoll key file", path.display()))?;
    let digits = file
        .secret_key
        .strip_prefix("0x")
        .unwrap_or(&file.secret_key);
    let mut seed = [0u8; 32];
    hex::decode_to_slice(digits, &mut seed)
        .with_context(|| format!("{}: secret_key is not 64 hex digits", path.display()))?;
    let key = KeyPair::from_seed(seed);
    if file.public_key.trim_start_matches("0x") != hex::encode(key.public().0) {
        bail!("{}: public_key does not match secret_key", path.display());
    }
    if file.address != key.address().to_string() {
        bail!("{}: address does not match secret_key", path.display());
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_survives_the_round_trip_and_tampering_is_caught() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("k.json");
        let key = KeyPair::from_seed([7; 32]);
        write(&path, &key).expect("written");
        assert_eq!(read(&path).expect("read").public(), key.public());
        assert!(write(&path, &key).is_err(), "never overwrites");
        let mode = std::fs::metadata(&path).expect("exists").permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let text = std::fs::read_to_string(&path).expect("read");
        let other = KeyPair::from_seed([8; 32]).address().to_string();
        let tampered = text.replace(&key.address().to_string(), &other);
        std::fs::write(&path, tampered).expect("write");
        assert!(read(&path).is_err());
    }
}
