//! Secret files only the agent reads (bot tokens), in one fixed directory inside its state dir:
//! names checked, contents bounded, written 0600 and atomically. The local provider writes them
//! directly; on a Fly machine the sidecar writes them for Roost (`PUT /roost/secrets/<name>`).
//!
//! std only: the local provider shares it without the sidecar's dependencies.

use std::path::{Path, PathBuf};

/// The directory, under the agent's state dir.
pub const DIR: &str = "roost-secrets";
/// A bot token is under 100 bytes; anything near this is not one.
pub const MAX_BYTES: usize = 4096;
const MAX_NAME: usize = 64;

/// Where the agent whose state dir is `state_dir` reads its secret files.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join(DIR)
}

/// A file name Roost chose: `[a-z0-9.-]`, at most 64 bytes, not starting with a dot, no `..`.
/// Nothing else can name a path outside [`dir`].
pub fn check_name(name: &str) -> Result<&str, String> {
    let fine = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && !name.contains("..")
        && !name.ends_with(".tmp")
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if fine { Ok(name) } else { Err(format!("not a secret file name: {name:?}")) }
}

/// Writes `contents` to `path` (mode 0600, its directory 0700, replacing any file atomically:
/// a temporary file, synced, renamed over it), or deletes it with `None` (a missing file is
/// fine). Blocking: call it off async workers.
pub fn write(path: &Path, contents: Option<&[u8]>) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let Some(contents) = contents else {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    };
    if contents.len() > MAX_BYTES {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "a secret file is at most 4 KiB"));
    }
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a secret file is in a directory"))?;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let temp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&temp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_leave_the_directory() {
        for bad in ["", "../x", "a/b", ".x", "a..b", "A", "x.tmp", "a b", "é", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("telegram-ab12.token").is_ok());
        assert!(check_name("discord-0123456789abcdef.token").is_ok());
    }

    #[test]
    fn files_are_private_bounded_and_replaced_whole() {
        use std::os::unix::fs::PermissionsExt;
        let state = tempfile::tempdir().unwrap();
        let path = dir(state.path()).join("telegram-ab.token");
        write(&path, Some(b"one")).unwrap();
        write(&path, Some(b"two")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        assert!(write(&path, Some(&[b'x'; MAX_BYTES + 1])).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"two", "a refused write leaves the old file");
        write(&path, None).unwrap();
        assert!(!path.exists());
        write(&path, None).unwrap();
    }
}
