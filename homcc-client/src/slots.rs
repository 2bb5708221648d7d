//! Host slots and host health, shared by every homcc process of the user through files in the
//! state dir (`$XDG_RUNTIME_DIR/homcc`, else `<cache dir>/run`), one directory per host:
//!
//! - `slot-<i>`: locked (`File::try_lock`) while a compile uses slot `i`; the kernel drops the
//!   lock when the process ends, even by `kill -9`.
//! - `failed`: the last failure's reason; while it is younger than [`BACKOFF`], no homcc process
//!   tries the host.
//! - `ok`: touched when the host answers; a host without a recent answer is tried by one
//!   process at a time (holding `probe`), so a dead host costs one attempt, not one per process.
//! - `busy`: touched when the host says it is full. Load, not failure: for [`BUSY_HINT`] the
//!   other processes ask the hosts that did not say so first, rather than all asking it again.
//!
//! `localhost` has slots too: local compiles and dependency scans.

use std::{
    fs::{File, OpenOptions},
    io,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use crate::hosts::Host;

/// How long every homcc process skips a host after it failed.
pub const BACKOFF: Duration = Duration::from_secs(30);

/// How long every homcc process skips a host after a failure the next try finds out about at
/// once (nothing listens on its port, it is shutting down): a restarted server gets its
/// compiles back within this, and a host that stays down costs one refused connection per
/// interval.
pub const QUICK_BACKOFF: Duration = Duration::from_secs(2);

/// How long a host that said it is full is asked only when no other host has room.
pub const BUSY_HINT: Duration = Duration::from_secs(1);

/// The slot directory of this machine's own compiles and scans.
const LOCAL: &str = "localhost";

/// A taken slot; dropping it (or the process ending) frees it.
#[derive(Debug)]
pub struct Slot {
    file: File,
}

impl Slot {
    /// Keeps the slot across `exec`: the compiler that replaces homcc holds it until it exits.
    pub fn keep_across_exec(self) {
        use std::os::fd::IntoRawFd;
        let fd = self.file.into_raw_fd();
        // SAFETY: `fd` is an open descriptor this process owns (leaked on purpose).
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
        }
    }
}

/// The outcome of one look at the hosts.
#[derive(Debug)]
pub enum Pick {
    /// A slot on `hosts[index]`, the host with the most free slots; `alone`: no other host is
    /// left to try.
    Host {
        index: usize,
        slot: Slot,
        alone: bool,
    },
    /// Hosts are left to try, but every slot is taken.
    Full,
    /// No host is left to try: tried already, backing off or unusable; why, per host.
    NoHost(Vec<String>),
}

/// The shared state directory.
#[derive(Debug, Clone)]
pub struct Slots {
    dir: PathBuf,
}

impl Slots {
    /// Opens (creates) the state directory.
    pub fn open(dir: &Path) -> io::Result<Slots> {
        std::fs::create_dir_all(dir)?;
        Ok(Slots {
            dir: dir.to_owned(),
        })
    }

    fn host_dir(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// Takes a free slot of `key` (one of `limit`) and counts the free ones, this one included.
    fn try_take(&self, key: &str, limit: u32) -> io::Result<(Option<Slot>, u32)> {
        let dir = self.host_dir(key);
        std::fs::create_dir_all(&dir)?;
        let mut taken = None;
        let mut free = 0;
        for i in 0..limit {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join(format!("slot-{i}")))?;
            match file.try_lock() {
                Ok(()) => {
                    free += 1;
                    taken.get_or_insert(Slot { file });
                }
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
        }
        Ok((taken, free))
    }

    /// A local slot (of `limit`), waiting for one as long as it takes: local compiles and scans
    /// always run, at most `limit` at a time. `None` if the state dir does not work.
    pub fn take_local(&self, limit: u32) -> Option<Slot> {
        loop {
            match self.try_take(LOCAL, limit) {
                Ok((Some(slot), _)) => return Some(slot),
                Ok((None, _)) => std::thread::sleep(poll_interval()),
                Err(_) => return None,
            }
        }
    }

    /// A local slot if one is free now.
    pub fn try_take_local(&self, limit: u32) -> Option<Slot> {
        self.try_take(LOCAL, limit).ok()?.0
    }

    /// Among `hosts` not to `skip`, a slot on the one with the most free slots (ties broken at
    /// random); hosts backing off are not candidates. Hosts that said
    /// they are full within [`BUSY_HINT`] are candidates only when no other host is.
    pub fn pick(&self, hosts: &[Host], skip: &[bool]) -> Pick {
        let mut reasons = Vec::new();
        // The hosts that may be asked, and whether each said it is full just now.
        let mut candidates = Vec::new();
        for (index, host) in hosts.iter().enumerate() {
            if skip[index] {
                continue;
            }
            if let Some((left, reason)) = self.backing_off(&host.key()) {
                let left = left.as_secs() + 1;
                reasons.push(format!("{host}: skipped for {left} s after: {reason}"));
                continue;
            }
            candidates.push((index, self.said_busy(&host.key())));
        }
        if candidates.iter().any(|(_, busy)| !busy) {
            candidates.retain(|(_, busy)| !busy);
        }
        if candidates.is_empty() {
            return Pick::NoHost(reasons);
        }
        let alone = candidates.len() == 1;
        let mut best: Option<(usize, Slot, u32)> = None;
        let mut ties = 0;
        for (index, _) in candidates {
            let host = &hosts[index];
            let Ok((Some(slot), free)) = self.try_take(&host.key(), host.limit) else {
                continue;
            };
            match &best {
                Some((_, _, most)) if free < *most => continue,
                Some((_, _, most)) if free == *most => {
                    // Reservoir sampling keeps each tied host equally likely.
                    ties += 1;
                    if fastrand::u32(0..=ties) != 0 {
                        continue;
                    }
                }
                _ => ties = 0,
            }
            best = Some((index, slot, free));
        }
        match best {
            Some((index, slot, _)) => Pick::Host { index, slot, alone },
            None => Pick::Full,
        }
    }

    /// How much longer `key` is skipped, and why, if its back-off still runs.
    pub fn backing_off(&self, key: &str) -> Option<(Duration, String)> {
        let path = self.host_dir(key).join("failed");
        let age = age(&path)?;
        let record = std::fs::read_to_string(&path).unwrap_or_default();
        let record = record.trim();
        // "<seconds> <reason>"; a record without the seconds (an older homcc's) runs BACKOFF.
        let timed =
            (record.split_once(' ')).and_then(|(secs, reason)| Some((secs.parse().ok()?, reason)));
        let (back_off, reason) = match timed {
            Some((secs, reason)) => (Duration::from_secs(secs), reason),
            None => (BACKOFF, record),
        };
        let left = back_off.checked_sub(age).filter(|d| !d.is_zero())?;
        Some((left, reason.to_owned()))
    }

    /// `key` said it is full: for [`BUSY_HINT`], other hosts are asked first.
    pub fn record_busy(&self, key: &str) {
        let dir = self.host_dir(key);
        let _ = (std::fs::create_dir_all(&dir))
            .and_then(|()| File::create(dir.join("busy")))
            .and_then(|file| file.set_modified(SystemTime::now()));
    }

    /// Whether `key` said it is full within [`BUSY_HINT`].
    fn said_busy(&self, key: &str) -> bool {
        age(&self.host_dir(key).join("busy")).is_some_and(|age| age < BUSY_HINT)
    }

    /// Starts `key`'s back-off of `back_off`, for every homcc process of the user.
    pub fn record_failure(&self, key: &str, back_off: Duration, reason: &str) {
        let dir = self.host_dir(key);
        let _ = std::fs::remove_file(dir.join("ok"));
        let record = format!("{} {reason}", back_off.as_secs());
        let _ = write_atomically(&dir, "failed", record.as_bytes());
    }

    /// `key` answered: it is healthy, and no longer backing off.
    pub fn record_success(&self, key: &str) {
        let dir = self.host_dir(key);
        if age(&dir.join("ok")).is_some_and(|age| age < BACKOFF / 2) {
            return;
        }
        let _ = std::fs::remove_file(dir.join("failed"));
        let _ = write_atomically(&dir, "ok", b"");
    }

    /// Before trying `key`: if it has not answered recently, waits (until `deadline` at most)
    /// to be the one process that tries it; the returned lock is held until it answers or
    /// fails. `None` when the host is known healthy (or the lock cannot be had).
    pub async fn probe(&self, key: &str, deadline: Instant) -> Option<File> {
        let dir = self.host_dir(key);
        if age(&dir.join("ok")).is_some_and(|age| age < BACKOFF) {
            return None;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("probe"))
            .ok()?;
        while Instant::now() < deadline {
            match file.try_lock() {
                Ok(()) => return Some(file),
                Err(std::fs::TryLockError::WouldBlock) => tokio::time::sleep(poll_interval()).await,
                Err(std::fs::TryLockError::Error(_)) => return None,
            }
        }
        None
    }
}

/// How long ago `path` was written, if it exists.
fn age(path: &Path) -> Option<Duration> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(
        SystemTime::now()
            .duration_since(modified)
            .unwrap_or(Duration::ZERO),
    )
}

/// Writes `dir/name` so that readers see the old or the new content, never a part.
fn write_atomically(dir: &Path, name: &str, content: &[u8]) -> io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(content)?;
    file.persist(dir.join(name)).map_err(|e| e.error)?;
    Ok(())
}

/// A short random pause between looks at taken slots, so that waiting processes spread out.
pub fn poll_interval() -> Duration {
    Duration::from_millis(fastrand::u64(10..40))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(line: &str) -> Host {
        line.parse().unwrap()
    }

    #[test]
    fn a_hosts_limit_holds_and_a_dropped_slot_is_free_again() {
        let dir = tempfile::tempdir().unwrap();
        let slots = Slots::open(dir.path()).unwrap();
        let hosts = [host("a/2")];
        let Pick::Host {
            index: 0,
            slot: first,
            alone: true,
        } = slots.pick(&hosts, &[false])
        else {
            panic!("a free slot")
        };
        let Pick::Host {
            index: 0,
            slot: _second,
            ..
        } = slots.pick(&hosts, &[false])
        else {
            panic!("a second free slot")
        };
        assert!(matches!(slots.pick(&hosts, &[false]), Pick::Full));
        drop(first);
        assert!(matches!(
            slots.pick(&hosts, &[false]),
            Pick::Host { index: 0, .. }
        ));
    }

    #[test]
    fn the_host_with_most_free_slots_is_picked() {
        let dir = tempfile::tempdir().unwrap();
        let slots = Slots::open(dir.path()).unwrap();
        let hosts = [host("a/1"), host("b/3")];
        let mut held = Vec::new();
        let mut picked = Vec::new();
        while let Pick::Host { index, slot, alone } = slots.pick(&hosts, &[false, false]) {
            assert!(!alone, "two hosts to choose from");
            picked.push(index);
            held.push(slot);
        }
        // b has 3 free, then 2; then a and b tie at 1 each.
        assert_eq!(picked[..2], [1, 1]);
        picked[2..].sort();
        assert_eq!(picked[2..], [0, 1]);
    }

    #[test]
    fn a_host_that_said_busy_is_asked_only_when_no_other_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let slots = Slots::open(dir.path()).unwrap();
        let hosts = [host("full/4"), host("other/1")];
        slots.record_busy(&hosts[0].key());
        assert!(
            slots.backing_off(&hosts[0].key()).is_none(),
            "busy is no failure"
        );
        let Pick::Host {
            index: 1,
            slot: _other,
            alone: true,
        } = slots.pick(&hosts, &[false, false])
        else {
            panic!("the host that did not say busy, though it has fewer free slots")
        };
        // Its one slot is taken: wait for it rather than ask the full host again.
        assert!(matches!(slots.pick(&hosts, &[false, false]), Pick::Full));
        // With the other host out of the question, the full one is asked.
        let pick = slots.pick(&hosts, &[false, true]);
        assert!(
            matches!(
                pick,
                Pick::Host {
                    index: 0,
                    alone: true,
                    ..
                }
            ),
            "{pick:?}"
        );
    }

    #[test]
    fn failed_hosts_are_skipped_until_they_answer() {
        let dir = tempfile::tempdir().unwrap();
        let slots = Slots::open(dir.path()).unwrap();
        let hosts = [host("a"), host("b")];
        slots.record_failure(&hosts[0].key(), BACKOFF, "unreachable: connection refused");
        let (left, reason) = slots.backing_off(&hosts[0].key()).unwrap();
        assert!(left <= BACKOFF && reason == "unreachable: connection refused");
        let pick = slots.pick(&hosts, &[false; 2]);
        assert!(
            matches!(
                pick,
                Pick::Host {
                    index: 1,
                    alone: true,
                    ..
                }
            ),
            "b is the only candidate: {pick:?}"
        );
        let Pick::NoHost(reasons) = slots.pick(&hosts, &[false, true]) else {
            panic!("no host left")
        };
        assert_eq!(reasons.len(), 1);
        assert!(
            reasons[0].starts_with("a:3126: skipped for "),
            "{reasons:?}"
        );
        assert!(reasons[0].ends_with(" s after: unreachable: connection refused"));
        slots.record_success(&hosts[0].key());
        assert!(slots.backing_off(&hosts[0].key()).is_none());
    }

    #[test]
    fn local_slots_are_counted_too() {
        let dir = tempfile::tempdir().unwrap();
        let slots = Slots::open(dir.path()).unwrap();
        let one = slots.take_local(2).unwrap();
        let _two = slots.try_take_local(2).unwrap();
        assert!(slots.try_take_local(2).is_none());
        drop(one);
        assert!(slots.try_take_local(2).is_some());
    }
}
