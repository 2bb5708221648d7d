//! A blob's file on disk: sealed read-only for every compiler, hard-linked (or copied) into job
//! roots, its mtime following its use, and what is not a blob removed.

use std::{
    fs::{self, File},
    io,
    os::unix::fs::PermissionsExt,
    path::Path,
    time::SystemTime,
};

use tracing::{debug, warn};

/// Makes `dest` (which must not exist) a hard link of `src`, or a copy when `src` has as many
/// links as its filesystem allows (`EMLINK`, 65,000 on ext4): no number of names one client
/// gives a file can make other compiles fail to place it.
pub fn link_or_copy(src: &Path, dest: &Path) -> io::Result<()> {
    match fs::hard_link(src, dest) {
        Err(e) if e.raw_os_error() == Some(libc::EMLINK) => copy_new(src, dest),
        linked => linked,
    }
}

/// Copies `src` to `dest`, which must not exist, with `src`'s mode and mtime.
pub fn copy_new(src: &Path, dest: &Path) -> io::Result<()> {
    let mut from = File::open(src)?;
    let mut to = File::options().write(true).create_new(true).open(dest)?;
    io::copy(&mut from, &mut to)?;
    let meta = from.metadata()?;
    to.set_modified(meta.modified()?)?;
    to.set_permissions(meta.permissions())
}

/// The owner of every blob when homccd runs as root: the overflow user, whom no process of
/// homccd's runs as, so that a compiler (root without capabilities) can neither write nor chmod it.
pub(super) const BLOB_OWNER: u32 = 65534;

/// Makes a blob's file read-only for every compiler: mode 0444 and, when homccd runs as root, an
/// owner of its own ([`BLOB_OWNER`]). A compiler runs as homccd's user without capabilities, so
/// the mode binds it, also through a hard link in a job root under any name.
pub(super) fn seal(path: &Path) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o444))?;
    if let Some(owner) = sealed_owner() {
        std::os::unix::fs::chown(path, Some(owner), Some(owner))?;
    }
    Ok(())
}

/// The owner [`seal`] gives blobs: [`BLOB_OWNER`] when homccd runs as root, else none (they
/// stay homccd's user's).
pub(super) fn sealed_owner() -> Option<u32> {
    nix::unistd::geteuid().is_root().then_some(BLOB_OWNER)
}

/// Sets a cached file's mtime to now, so that a restart orders blobs by last use. Best effort.
pub(super) fn touch(file: io::Result<File>) {
    if let Err(e) = file.and_then(|f| f.set_modified(SystemTime::now())) {
        debug!(error = %e, "cannot update mtime of cached blob");
    }
}

/// The bytes free (for an unprivileged user) and in all on the filesystem of `path`.
pub fn space(path: &Path) -> Option<(u64, u64)> {
    let fs = nix::sys::statvfs::statvfs(path).ok()?;
    let block = fs.fragment_size();
    Some((fs.blocks_available() * block, fs.blocks() * block))
}

/// Deletes a leftover temp file or a file that is not a blob, found by `Cache::open`.
pub(super) fn remove_junk(path: &Path, is_dir: bool) {
    debug!(path = %path.display(), "deleting stray file in cache");
    let result = if is_dir {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    if let Err(e) = result {
        warn!(path = %path.display(), error = %e, "cannot delete stray file in cache");
    }
}
