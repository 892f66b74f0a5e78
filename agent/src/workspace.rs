//! The agent's workspace (OpenClaw's `<state dir>/workspace`, where it reads and writes the
//! user's files) as Roost's file browser sees it: paths parsed once ([`WorkspacePath`]), and every
//! operation resolved so that it stays inside the workspace, symlinks included. The local
//! provider calls this directly on the agent's state dir; on a Fly machine the sidecar calls it
//! for Roost (`/roost/files…`). This is the one place path safety lives.
//!
//! std (and libc) only, and blocking: call it off async workers.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

/// The workspace under the state dir: OpenClaw's default when `OPENCLAW_STATE_DIR` is set.
pub const DIR: &str = "workspace";
/// The largest upload.
pub const MAX_UPLOAD_BYTES: u64 = 100 * 1024 * 1024;
/// One name (a path component), in bytes: Linux's own `NAME_MAX`.
pub const MAX_NAME_BYTES: usize = 255;
/// A whole relative path, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// A listing stops here (and says it was cut): a page of names, not a dump of a huge folder.
pub const MAX_LIST_ENTRIES: usize = 2000;
/// Uploads are written to `<prefix><n>` beside their target and renamed at the end; these names
/// are hidden from listings and cannot be named by a request.
const UPLOAD_PREFIX: &str = ".roost-upload-";

/// Where the agent whose state dir is `state_dir` keeps its workspace.
pub fn root(state_dir: &Path) -> PathBuf {
    state_dir.join(DIR)
}

/// A path relative to the workspace: `/`-separated names, none empty, `.` or `..`, no NUL, no
/// backslash, no control characters, each name at most [`MAX_NAME_BYTES`] and the whole at most
/// [`MAX_PATH_BYTES`]. The empty path is the workspace itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspacePath(String);

/// Why a path was refused; the text is a sentence for users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    Absolute,
    ParentDir,
    Nul,
    Backslash,
    Control,
    EmptyName,
    NameTooLong,
    PathTooLong,
    Reserved,
}

impl PathError {
    pub fn sentence(self) -> &'static str {
        match self {
            Self::Absolute => "A file path is relative to the workspace; it cannot start with a slash.",
            Self::ParentDir => "A file path cannot contain \"..\" or \".\" parts.",
            Self::Nul => "A file path cannot contain a NUL byte.",
            Self::Backslash => "A file path cannot contain a backslash.",
            Self::Control => "A file path cannot contain control characters.",
            Self::EmptyName => "A file path cannot contain an empty name (two slashes in a row, or one at the end).",
            Self::NameTooLong => "A file or folder name is at most 255 bytes.",
            Self::PathTooLong => "A file path is at most 1024 bytes.",
            Self::Reserved => "That name is reserved for uploads in progress.",
        }
    }
}

impl WorkspacePath {
    pub fn parse(path: &str) -> Result<Self, PathError> {
        if path.is_empty() {
            return Ok(Self(String::new()));
        }
        if path.len() > MAX_PATH_BYTES {
            return Err(PathError::PathTooLong);
        }
        if path.contains('\0') {
            return Err(PathError::Nul);
        }
        if path.contains('\\') {
            return Err(PathError::Backslash);
        }
        if path.chars().any(char::is_control) {
            return Err(PathError::Control);
        }
        if path.starts_with('/') {
            return Err(PathError::Absolute);
        }
        for name in path.split('/') {
            match name {
                "" => return Err(PathError::EmptyName),
                "." | ".." => return Err(PathError::ParentDir),
                _ if name.len() > MAX_NAME_BYTES => return Err(PathError::NameTooLong),
                _ if name.starts_with(UPLOAD_PREFIX) => return Err(PathError::Reserved),
                _ => {}
            }
        }
        Ok(Self(path.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The last name (empty for the workspace itself).
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or_default()
    }

    /// Everything before the last name.
    fn parent(&self) -> &str {
        self.0.rsplit_once('/').map_or("", |(parent, _)| parent)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Dir => "dir",
            Self::Symlink => "symlink",
            Self::Other => "other",
        }
    }

    pub fn parse(kind: &str) -> Option<Self> {
        Some(match kind {
            "file" => Self::File,
            "dir" => Self::Dir,
            "symlink" => Self::Symlink,
            "other" => Self::Other,
            _ => return None,
        })
    }

    fn of(file_type: fs::FileType) -> Self {
        if file_type.is_symlink() {
            Self::Symlink
        } else if file_type.is_dir() {
            Self::Dir
        } else if file_type.is_file() {
            Self::File
        } else {
            Self::Other
        }
    }
}

/// One listed name. A symlink is listed as itself (it is not followed to describe it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub kind: Kind,
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub modified: Option<u64>,
}

/// A folder's names, sorted folders first, then by name; at most [`MAX_LIST_ENTRIES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub entries: Vec<Entry>,
    pub truncated: bool,
}

/// Why an operation failed. Everything but [`FsError::Io`] is the request's fault and has a
/// sentence for users; `Io` is for the log.
#[derive(Debug)]
pub enum FsError {
    BadPath(PathError),
    NotFound,
    /// It resolves (through a symlink) to somewhere outside the workspace.
    Outside,
    NotADirectory,
    NotAFile,
    NotEmpty,
    /// The workspace itself cannot be deleted or overwritten.
    IsRoot,
    TooLarge,
    Io(io::Error),
}

impl FsError {
    pub fn sentence(&self) -> &'static str {
        match self {
            Self::BadPath(e) => e.sentence(),
            Self::NotFound => "There is no such file or folder in the workspace.",
            Self::Outside => "That path leads outside the workspace.",
            Self::NotADirectory => "That is not a folder.",
            Self::NotAFile => "That is not a file.",
            Self::NotEmpty => "That folder is not empty; delete it with recursive=true to delete what is in it too.",
            Self::IsRoot => "The workspace itself cannot be changed that way.",
            Self::TooLarge => "An upload is at most 100 MB.",
            Self::Io(_) => "The workspace could not be read or written.",
        }
    }

    /// The HTTP status that answers it, the same at the sidecar and the gateway.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadPath(_) => 400,
            Self::Outside => 403,
            Self::NotFound => 404,
            Self::NotADirectory | Self::NotAFile | Self::NotEmpty | Self::IsRoot => 409,
            Self::TooLarge => 413,
            Self::Io(_) => 500,
        }
    }

    /// A short stable code, shared by the sidecar and the gateway.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadPath(_) => "bad_path",
            Self::NotFound => "not_found",
            Self::Outside => "outside",
            Self::NotADirectory => "not_a_directory",
            Self::NotAFile => "not_a_file",
            Self::NotEmpty => "not_empty",
            Self::IsRoot => "is_root",
            Self::TooLarge => "too_large",
            Self::Io(_) => "io",
        }
    }

    /// The inverse of [`FsError::code`] (for a bad path the exact reason is not carried).
    pub fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "bad_path" => Self::BadPath(PathError::ParentDir),
            "not_found" => Self::NotFound,
            "outside" => Self::Outside,
            "not_a_directory" => Self::NotADirectory,
            "not_a_file" => Self::NotAFile,
            "not_empty" => Self::NotEmpty,
            "is_root" => Self::IsRoot,
            "too_large" => Self::TooLarge,
            _ => return None,
        })
    }
}

impl From<io::Error> for FsError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound => Self::NotFound,
            io::ErrorKind::NotADirectory => Self::NotADirectory,
            io::ErrorKind::IsADirectory => Self::NotAFile,
            io::ErrorKind::DirectoryNotEmpty => Self::NotEmpty,
            _ => Self::Io(e),
        }
    }
}

impl From<PathError> for FsError {
    fn from(e: PathError) -> Self {
        Self::BadPath(e)
    }
}

/// One agent's workspace, its root resolved (created, 0700, on first use).
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    pub fn open(state_dir: &Path) -> io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let root = root(state_dir);
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&root)?;
        Ok(Self { root: root.canonicalize()? })
    }

    /// `path` with every symlink resolved; refused unless it stays inside the workspace.
    fn resolve(&self, path: &WorkspacePath) -> Result<PathBuf, FsError> {
        let resolved = self.root.join(path.as_str()).canonicalize()?;
        if resolved.starts_with(&self.root) { Ok(resolved) } else { Err(FsError::Outside) }
    }

    /// The resolved folder `path` is in, and its last name (which is not followed).
    fn resolve_parent<'a>(&self, path: &'a WorkspacePath) -> Result<(PathBuf, &'a str), FsError> {
        if path.is_root() {
            return Err(FsError::IsRoot);
        }
        let parent = WorkspacePath(path.parent().to_string());
        let dir = self.resolve(&parent)?;
        if !dir.is_dir() {
            return Err(FsError::NotADirectory);
        }
        Ok((dir, path.name()))
    }

    pub fn list(&self, path: &WorkspacePath) -> Result<Listing, FsError> {
        let dir = self.resolve(path)?;
        let mut entries = Vec::new();
        let mut truncated = false;
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            if name.starts_with(UPLOAD_PREFIX) {
                continue;
            }
            if entries.len() == MAX_LIST_ENTRIES {
                truncated = true;
                break;
            }
            let meta = entry.metadata()?;
            let kind = Kind::of(meta.file_type());
            let modified = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs());
            let size = if kind == Kind::File { meta.len() } else { 0 };
            entries.push(Entry { name, kind, size, modified });
        }
        entries.sort_by(|a, b| (a.kind != Kind::Dir, &a.name).cmp(&(b.kind != Kind::Dir, &b.name)));
        Ok(Listing { entries, truncated })
    }

    /// Opens a regular file for reading; returns it and its size.
    pub fn open_file(&self, path: &WorkspacePath) -> Result<(File, u64), FsError> {
        let resolved = self.resolve(path)?;
        // The resolved path has no symlinks; O_NOFOLLOW refuses one swapped in since.
        let file = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(&resolved)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(FsError::NotAFile);
        }
        Ok((file, meta.len()))
    }

    /// Starts an upload to `path`: a temporary file beside it, renamed over it by
    /// [`Upload::commit`]; dropped uncommitted, it is removed. The folder must exist.
    pub fn create_upload(&self, path: &WorkspacePath) -> Result<Upload, FsError> {
        let (mut dir, name) = self.resolve_parent(path)?;
        let mut target = dir.join(name);
        match fs::symlink_metadata(&target) {
            Ok(meta) if meta.is_dir() => return Err(FsError::NotAFile),
            // Written through to the file it names, only if that is inside too.
            Ok(meta) if meta.is_symlink() => {
                target = self.resolve(path)?;
                dir = target.parent().map(Path::to_path_buf).ok_or(FsError::IsRoot)?;
                if target.is_dir() {
                    return Err(FsError::NotAFile);
                }
            }
            _ => {}
        }
        static NEXT: AtomicU64 = AtomicU64::new(0);
        for _ in 0..16 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let temp = dir.join(format!("{UPLOAD_PREFIX}{}-{n}", std::process::id()));
            match OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(&temp)
            {
                Ok(file) => return Ok(Upload { file: Some(file), temp, target, written: 0 }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(FsError::Io(io::Error::other("no free temporary upload name")))
    }

    /// Deletes a file, a symlink (itself, never what it points to), or an empty folder; with
    /// `recursive`, a folder and everything in it.
    pub fn delete(&self, path: &WorkspacePath, recursive: bool) -> Result<(), FsError> {
        let (dir, name) = self.resolve_parent(path)?;
        let target = dir.join(name);
        let meta = fs::symlink_metadata(&target)?;
        if meta.is_dir() {
            // `remove_dir_all` does not follow symlinks inside the folder.
            if recursive { fs::remove_dir_all(&target)? } else { fs::remove_dir(&target)? }
        } else {
            fs::remove_file(&target)?;
        }
        Ok(())
    }
}

/// An upload in progress (see [`Workspace::create_upload`]): bounded by [`MAX_UPLOAD_BYTES`].
pub struct Upload {
    file: Option<File>,
    temp: PathBuf,
    target: PathBuf,
    written: u64,
}

impl Upload {
    /// Appends a chunk; past the limit the upload is refused (and removed when dropped).
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), FsError> {
        use std::io::Write;
        self.written += chunk.len() as u64;
        if self.written > MAX_UPLOAD_BYTES {
            return Err(FsError::TooLarge);
        }
        let file = self.file.as_mut().ok_or_else(|| FsError::Io(io::Error::other("the upload is closed")))?;
        file.write_all(chunk)?;
        Ok(())
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// Syncs the file, makes it readable like the agent's own (0644), and renames it into place.
    pub fn commit(mut self) -> Result<u64, FsError> {
        use std::os::unix::fs::PermissionsExt;
        let file = self.file.take().ok_or_else(|| FsError::Io(io::Error::other("the upload is closed")))?;
        file.sync_all()?;
        file.set_permissions(fs::Permissions::from_mode(0o644))?;
        drop(file);
        fs::rename(&self.temp, &self.target)?;
        self.temp = PathBuf::new();
        Ok(self.written)
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> WorkspacePath {
        WorkspacePath::parse(p).unwrap()
    }

    #[test]
    fn paths_that_could_leave_the_workspace_are_refused() {
        let long_name = "a".repeat(MAX_NAME_BYTES + 1);
        let long_path = ["abc"; 300].join("/");
        let cases: &[(&str, PathError)] = &[
            ("/etc/passwd", PathError::Absolute),
            ("..", PathError::ParentDir),
            ("../x", PathError::ParentDir),
            ("a/../../x", PathError::ParentDir),
            ("a/./b", PathError::ParentDir),
            ("a\0b", PathError::Nul),
            ("a\\..\\b", PathError::Backslash),
            ("a\nb", PathError::Control),
            ("a//b", PathError::EmptyName),
            ("a/", PathError::EmptyName),
            (&long_name, PathError::NameTooLong),
            (&long_path, PathError::PathTooLong),
            (".roost-upload-1-2", PathError::Reserved),
        ];
        for (bad, why) in cases {
            assert_eq!(WorkspacePath::parse(bad), Err(*why), "{bad:?}");
        }
        assert!(path("").is_root());
        assert_eq!(path("notes/a b.md").name(), "a b.md");
        assert_eq!(path("notes/a b.md").parent(), "notes");
        assert_eq!(path(&"a".repeat(MAX_NAME_BYTES)).name().len(), MAX_NAME_BYTES);
    }

    #[test]
    fn symlinks_out_of_the_workspace_are_not_followed() {
        let state = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), b"outside").unwrap();
        let ws = Workspace::open(state.path()).unwrap();
        let root = root(state.path());
        std::os::unix::fs::symlink(outside.path(), root.join("out")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), root.join("leak.txt")).unwrap();
        std::fs::write(root.join("in.txt"), b"inside").unwrap();
        std::os::unix::fs::symlink("in.txt", root.join("alias.txt")).unwrap();

        assert!(matches!(ws.list(&path("out")), Err(FsError::Outside)));
        assert!(matches!(ws.open_file(&path("leak.txt")), Err(FsError::Outside)));
        assert!(matches!(ws.open_file(&path("out/secret.txt")), Err(FsError::Outside)));
        assert!(matches!(ws.create_upload(&path("out/new.txt")), Err(FsError::Outside)));
        assert!(matches!(ws.delete(&path("out/secret.txt"), false), Err(FsError::Outside)));
        assert!(matches!(ws.create_upload(&path("leak.txt")), Err(FsError::Outside)));
        assert!(ws.open_file(&path("alias.txt")).is_ok(), "a symlink inside the workspace is fine");
        let mut through = ws.create_upload(&path("alias.txt")).unwrap();
        through.write(b"new").unwrap();
        through.commit().unwrap();
        assert_eq!(std::fs::read(root.join("in.txt")).unwrap(), b"new", "written through the link");
        // Deleting the symlink removes the link, not what it points to.
        ws.delete(&path("out"), true).unwrap();
        assert!(outside.path().join("secret.txt").exists());
        let listing = ws.list(&path("")).unwrap();
        let kinds: Vec<_> = listing.entries.iter().map(|e| (e.name.as_str(), e.kind)).collect();
        assert_eq!(kinds, [("alias.txt", Kind::Symlink), ("in.txt", Kind::File), ("leak.txt", Kind::Symlink)]);
    }

    #[test]
    fn uploads_replace_whole_and_oversize_ones_leave_nothing() {
        let state = tempfile::tempdir().unwrap();
        let ws = Workspace::open(state.path()).unwrap();
        let mut upload = ws.create_upload(&path("a.txt")).unwrap();
        upload.write(b"hello").unwrap();
        assert!(ws.list(&path("")).unwrap().entries.is_empty(), "the temporary file is not listed");
        assert_eq!(upload.commit().unwrap(), 5);
        assert_eq!(std::fs::read(root(state.path()).join("a.txt")).unwrap(), b"hello");

        let mut upload = ws.create_upload(&path("big.bin")).unwrap();
        upload.write(&vec![0; MAX_UPLOAD_BYTES as usize]).unwrap();
        assert!(matches!(upload.write(b"x"), Err(FsError::TooLarge)));
        drop(upload);
        let names: Vec<_> = std::fs::read_dir(root(state.path())).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["a.txt"], "nothing of the refused upload is left");

        std::fs::create_dir(root(state.path()).join("d")).unwrap();
        std::fs::write(root(state.path()).join("d/x"), b"x").unwrap();
        assert!(matches!(ws.delete(&path("d"), false), Err(FsError::NotEmpty)));
        ws.delete(&path("d"), true).unwrap();
        assert!(matches!(ws.delete(&path(""), true), Err(FsError::IsRoot)));
        assert!(matches!(ws.create_upload(&path("missing/a.txt")), Err(FsError::NotFound)));
    }
}
