//! OpenClaw's TMPDIR, kept on the volume. OpenClaw's launcher turns on Node's compile cache
//! under `$TMPDIR/node-compile-cache`; in the machine's `/tmp` it was lost at every stop (a Fly
//! machine starts on a fresh root filesystem), so every wake compiled OpenClaw's modules again.
//! Everything else in the directory is emptied before each start, as a reboot empties `/tmp`,
//! and the cache itself is bounded.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub const COMPILE_CACHE: &str = "node-compile-cache";
/// One OpenClaw release's cache is about 40 MB; a few releases' worth is kept, then it starts over.
pub const COMPILE_CACHE_LIMIT: u64 = 512 * 1024 * 1024;

/// Creates `dir` (private to the agent's user) and empties it of all but the compile cache,
/// which goes too once it holds more than `cache_limit` bytes. A leftover that cannot be removed
/// is logged and left: a stale temporary file must not keep the agent from starting. Blocking.
pub fn prepare(dir: &Path, cache_limit: u64) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if entry.file_name() == COMPILE_CACHE && kind.is_dir() && size_within(&path, cache_limit) {
            continue;
        }
        // Neither call follows a symlink: a link to elsewhere is removed, not what it names.
        let removed = if kind.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        if let Err(e) = removed {
            tracing::warn!(path = %path.display(), error = %e, "a leftover temporary file could not be removed");
        }
    }
    Ok(())
}

/// Whether the files under `dir` (symlinks not followed) add up to at most `limit` bytes; it
/// stops counting once past it. An unreadable tree counts as too big, so it is started over.
fn size_within(dir: &Path, limit: u64) -> bool {
    let mut total = 0u64;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else { return false };
        for entry in entries {
            let Ok(entry) = entry else { return false };
            let Ok(meta) = entry.path().symlink_metadata() else { return false };
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                total += meta.len();
                if total > limit {
                    return false;
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, bytes: usize) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, vec![b'x'; bytes]).unwrap();
    }

    #[test]
    fn the_compile_cache_stays_and_everything_else_goes() {
        let root = tempfile::tempdir().unwrap();
        let (dir, outside) = (root.path().join("tmp"), root.path().join("outside.txt"));
        write(&outside, 3);
        write(&dir.join("node-compile-cache/openclaw/2026.9.6/1-2/abc"), 100);
        write(&dir.join("openclaw-state-locks-1000/session.lock"), 10);
        write(&dir.join("stale.txt"), 10);
        std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();
        std::os::unix::fs::symlink(root.path(), dir.join("dir-link")).unwrap();
        prepare(&dir, 1000).unwrap();
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from(COMPILE_CACHE)]);
        assert!(dir.join("node-compile-cache/openclaw/2026.9.6/1-2/abc").exists());
        assert_eq!(std::fs::read(&outside).unwrap(), b"xxx", "a link's target is left alone");
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_cache_past_its_limit_starts_over() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("tmp");
        write(&dir.join("node-compile-cache/openclaw/a/1"), 600);
        write(&dir.join("node-compile-cache/openclaw/b/1"), 600);
        prepare(&dir, 1000).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        prepare(&dir, 1000).unwrap();
        assert!(dir.exists(), "a missing directory is made");
    }
}
