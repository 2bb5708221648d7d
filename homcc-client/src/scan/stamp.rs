//! What `stat` says of a file, as the scan cache compares it: device, inode, size, and the
//! modification and change times to the nanosecond. A file replaced by another (a new inode),
//! rewritten in place (a new ctime, which no program can set back) or retargeted through a
//! symlink (stat follows it) has another stamp.

use std::{
    fs::Metadata,
    os::unix::fs::MetadataExt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

/// How long after a file's last change its stamp is trusted, on a file system whose times have
/// whole seconds only (ext3, ext4 with small inodes, FAT's two seconds): a write within the same
/// tick of the file system's clock leaves the stamp as it was, so a scan that read a file
/// changed so recently is not recorded, as git's index distrusts "racily clean" entries.
pub const SETTLE: Duration = Duration::from_secs(2);

/// The same where a file's times have nanoseconds: they tick with the kernel's coarse clock,
/// every jiffy (at most 10 ms).
pub const SETTLE_FINE: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    pub fn of(meta: &Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Whether the file last changed (content or inode) long enough before `time` that no later
    /// change can leave this stamp as it is: [`SETTLE_FINE`] if both its times have nanoseconds
    /// (a whole second in both is taken for a file system that has none), else [`SETTLE`].
    pub fn settled_before(&self, time: SystemTime) -> bool {
        let Ok(since_epoch) = time.duration_since(UNIX_EPOCH) else {
            return false;
        };
        let fine = self.mtime.1 != 0 && self.ctime.1 != 0;
        let limit = since_epoch.saturating_sub(if fine { SETTLE_FINE } else { SETTLE });
        let before = |(secs, nanos): (i64, i64)| match (u64::try_from(secs), u32::try_from(nanos)) {
            (Ok(secs), Ok(nanos)) => Duration::new(secs, nanos) < limit,
            _ => secs < 0,
        };
        before(self.mtime) && before(self.ctime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_just_written_is_not_settled() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("h.h");
        std::fs::write(&file, "int x;").unwrap();
        let stamp = Stamp::of(&file.metadata().unwrap());
        assert!(!stamp.settled_before(SystemTime::now()));
        assert!(stamp.settled_before(SystemTime::now() + SETTLE + Duration::from_secs(1)));
    }

    #[test]
    fn whole_second_times_settle_later() {
        let at = |secs: i64, nanos: i64| Stamp {
            dev: 1,
            ino: 2,
            size: 3,
            mtime: (secs, nanos),
            ctime: (secs, nanos),
        };
        let time =
            |secs: u64, millis: u64| UNIX_EPOCH + Duration::from_millis(secs * 1000 + millis);
        assert!(at(100, 5).settled_before(time(100, 60)));
        assert!(!at(100, 5).settled_before(time(100, 40)));
        assert!(!at(100, 0).settled_before(time(101, 900)));
        assert!(at(100, 0).settled_before(time(102, 1)));
        let mixed = Stamp {
            ctime: (100, 0),
            ..at(100, 7)
        };
        assert!(!mixed.settled_before(time(100, 60)));
    }
}
