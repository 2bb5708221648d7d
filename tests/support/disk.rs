//! A small filesystem of a test's own (a tmpfs with a size limit; needs root, as CI has), to run
//! out of space on: homccd's cache on it, or a compile's output directory. Unmounted on drop.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
};

/// A tmpfs mounted on a temporary directory.
#[derive(Debug)]
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// A tmpfs of `size` (`mount -o size=`: `24m`, `1m`, ...).
    pub fn new(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .expect("mount is installed");
        assert!(status.success(), "mount tmpfs failed: this test needs root");
        Tmpfs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the filesystem: writes `filler` until the disk is full. Returns its path (remove it
    /// to free the space).
    pub fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let block = vec![0x5a_u8; 64 << 10];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        // The last partial block, byte by byte: not even that much is left.
        while file.write(&[0x5a]).is_ok_and(|n| n == 1) {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
