//! Files of an export are hostile until checked (docs/cutover.md, "Hostile exports"). A path named inside the
//! export must be a plain relative path (no root, prefix, `.` or `..`), every directory on the way a real directory
//! and the file a regular file, none of them a symbolic link (`symlink_metadata`, never `metadata`): no device,
//! FIFO, socket or directory is ever opened, nor a file with a second hard link (which may be outside the export). Sizes come from the metadata and are checked against a cap before a
//! byte is read. A checked file is opened with `O_NOFOLLOW | O_NONBLOCK` and compared (`fstat`: device, inode,
//! regular) with what was checked, which closes the race between the check and the use.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

/// `realm.json`: the realm's tables (users, streams, recipients, reactions); held in memory whole.
pub const MAX_REALM_JSON: u64 = 512 << 20;
/// One `messages-*.json`: a batch (Zulip writes 1,000 messages a file).
pub const MAX_MESSAGES_JSON: u64 = 256 << 20;
/// `uploads/records.json`.
pub const MAX_RECORDS_JSON: u64 = 128 << 20;
/// The mapping file.
pub const MAX_MAPPING: u64 = 16 << 20;
/// An upload larger than this is never read, whatever the homeserver accepts: the export's hash covers its name
/// and length only, and the import skips it (counted in the report).
pub const MAX_FILE: u64 = 1 << 30;

/// What a checked file was: compared with the file once opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Identity {
    dev: u64,
    ino: u64,
    pub size: u64,
}

impl Identity {
    fn of(meta: &std::fs::Metadata) -> Identity {
        Identity { dev: meta.dev(), ino: meta.ino(), size: meta.len() }
    }
}

/// The export's directory, resolved once; every path of the export is checked under it.
pub fn root(dir: &Path) -> Result<PathBuf, String> {
    let root = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
    if !root.is_dir() {
        return Err(format!("{}: not a directory (an unpacked Zulip export)", dir.display()));
    }
    Ok(root)
}

/// A path as the export names it, if it is plain and relative: only normal components.
pub fn relative(path: &str) -> Result<PathBuf, String> {
    let candidate = Path::new(path);
    if path.is_empty() || path.contains('\0') {
        return Err(format!("{path:?} is not a file name"));
    }
    if !candidate.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(format!("{path:?} is not a plain relative path (absolute, or with `..` or `.`)"));
    }
    Ok(candidate.to_owned())
}

fn kind(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Checks `relative` under `root` without following any link: every component exists, none is a link, the
/// directories are directories and the file a regular file. Answers what it found (device, inode, size).
pub fn check(root: &Path, relative: &Path) -> Result<Identity, String> {
    let shown = relative.display();
    let components: Vec<Component<'_>> = relative.components().collect();
    if components.is_empty() || !components.iter().all(|c| matches!(c, Component::Normal(_))) {
        return Err(format!("{shown}: not a plain relative path"));
    }
    let mut at = root.to_owned();
    for (index, component) in components.iter().enumerate() {
        at.push(component);
        let meta = std::fs::symlink_metadata(&at).map_err(|e| format!("{shown}: {e}"))?;
        let file_type = meta.file_type();
        let last = index + 1 == components.len();
        if (!last && !file_type.is_dir()) || (last && !file_type.is_file()) {
            let part = at.strip_prefix(root).unwrap_or(&at).display().to_string();
            return Err(format!("{shown}: {part} is {}, not a regular file in the export", kind(file_type)));
        }
        // A second name of a file can be anywhere on the filesystem: an unpacked export has none.
        if last && meta.nlink() > 1 {
            return Err(format!("{shown}: has {} hard links (it may be a file outside the export)", meta.nlink()));
        }
        if last {
            return Ok(Identity::of(&meta));
        }
    }
    Err(format!("{shown}: not a plain relative path"))
}

/// Opens a checked file: never through a link, never blocking on a FIFO swapped in, and only if it is still the
/// file that was checked (same device and inode, regular). The size is the one checked.
pub fn open(root: &Path, relative: &Path, expected: Identity) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(root.join(relative))?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.dev() != expected.dev || meta.ino() != expected.ino || meta.len() != expected.size {
        return Err(io::Error::other("the file changed after it was checked"));
    }
    Ok(file)
}

/// Reads one JSON file of the export, checked and size-capped before it is read.
pub fn read_json<T: for<'de> Deserialize<'de>>(root: &Path, name: &str, cap: u64) -> Result<T, String> {
    let path = relative(name)?;
    let identity = check(root, &path)?;
    if identity.size > cap {
        return Err(format!("{name}: {} bytes, over the cap of {cap} bytes for this file", identity.size));
    }
    let file = open(root, &path, identity).map_err(|e| format!("{name}: {e}"))?;
    serde_json::from_reader(io::BufReader::new(file.take(cap))).map_err(|e| format!("{name}: {e}"))
}

/// Reads an operator's file (the mapping): a regular file (a link to one is fine: the operator chose it) no larger
/// than `cap`.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("{shown}: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown}: {}, not a regular file", kind(meta.file_type())));
    }
    if meta.len() > cap {
        return Err(format!("{shown}: {} bytes, over the cap of {cap} bytes for this file", meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1).read_to_end(&mut bytes).map_err(|e| format!("{shown}: {e}"))?;
    if bytes.len() as u64 > cap {
        return Err(format!("{shown}: grew over the cap of {cap} bytes while read"));
    }
    Ok(bytes)
}
