//! The data dir, the database and the secret key are Roost's alone: `0700` and `0600`, whatever
//! the umask, and tightened when an earlier run left them looser.

use std::fs::{OpenOptions, Permissions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

pub fn dir(path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    tighten(path, 0o700)
}

/// Creates `path` empty when missing (never truncating it), so that whoever writes it next
/// finds it private already.
pub fn file(path: &Path) -> anyhow::Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    tighten(path, 0o600)
}

/// Writes a new file, `0600` from its first byte; fails if it exists.
pub fn write_new(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents)?;
    Ok(())
}

pub fn tighten(path: &Path, mode: u32) -> anyhow::Result<()> {
    let current = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.permissions().mode();
    if current & 0o077 != 0 {
        std::fs::set_permissions(path, Permissions::from_mode(mode))
            .with_context(|| format!("making {} private (mode {mode:o})", path.display()))?;
        tracing::info!(path = %path.display(), "made private to Roost's user");
    }
    Ok(())
}
