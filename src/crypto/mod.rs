//! Cryptographic helpers with no domain knowledge: password hashing, random tokens and
//! their hashes, sealing secrets at rest, writing secret files.

pub mod password;
pub mod refresh;
pub mod sealed;
pub mod secrets;

use std::path::Path;

/// Writes a file readable by its owner only, created with that mode (never world-readable,
/// not even for an instant), and synced before the key is recorded as usable.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
