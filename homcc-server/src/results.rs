//! The result cache: a compile homccd has run itself, answered again from its record. A remote
//! compile is hermetic, so its key names every input exactly: the resolved compiler (identity,
//! path, the binary's size, mtime and inode; compiles in an environment are not reused), the
//! the arguments as the client gave them, the cwd, the include dirs, the manifest (chunk digests,
//! which fix every path and file digest), the outputs asked for and the forwarded variables. The
//! key is known from the request alone, so a hit answers before any upload.
//!
//! Records live in the blob cache (content-addressed, size-bounded, verified like any blob),
//! and `<cache>/results-v1/<2 hex>/<key hex>` names the record's digest. Only compiles the
//! server ran are recorded, and only deterministic ones: not when an input file uses
//! `__DATE__`, `__TIME__` or `__TIMESTAMP__` without `SOURCE_DATE_EPOCH`, nor with `-flto`
//! without `-frandom-seed` (gcc names LTO sections at random). One compile runs per key at a
//! time: the others wait for its record (`begin`).

use std::{
    collections::HashMap,
    ffi::OsString,
    io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
};

use homcc_proto::{
    codec::{decode_record, encode_record},
    CompileRequest, CompilerIdentity, Digest,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::{cache::Cache, compilers::Resolved};

/// What a stored result holds: the compiler's verdict and every output, as the client gets
/// them (client paths, uncompressed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The dependency-file flags of the compile that made the record ([`dep_args`]), and the
    /// dependency file it wrote: only a request with the same ones gets that file from here.
    pub dep_args: Vec<OsString>,
    pub depfile: Option<PathBuf>,
    pub exit_code: i32,
    #[serde(with = "serde_bytes")]
    pub stdout: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub stderr: Vec<u8>,
    /// Client path and content of each output the compile wrote.
    pub outputs: Vec<(PathBuf, serde_bytes::ByteBuf)>,
}

/// Everything the key covers, in a fixed order; hashed, never stored.
#[derive(Serialize)]
struct KeyInput<'a> {
    format: &'static str,
    identity: &'a CompilerIdentity,
    compiler: &'a Path,
    /// The binary's size, mtime (s, ns) and inode.
    binary: String,
    target_args: &'a [OsString],
    /// Without the dependency-file flags, which change only the dependency file ([`answers`]).
    args: Vec<&'a OsString>,
    cwd: &'a Path,
    include_dirs: &'a [PathBuf],
    implicit_includes: &'a [PathBuf],
    preprocessed: bool,
    dirs: &'a [PathBuf],
    manifest: Vec<Digest>,
    outputs: &'a [PathBuf],
    env: Vec<(&'a str, &'a str)>,
}

/// Bumped when the key's inputs or the record's format change: older records are never found.
const FORMAT: &str = concat!("homccd-result-1/", env!("CARGO_PKG_VERSION"));

/// The key of `req` compiled by `compiler`, or `None` if its result must not be reused.
pub fn key(req: &CompileRequest, compiler: &Resolved) -> Option<Digest> {
    // In an environment the compiler can change without homccd seeing it before it runs (the
    // wrapper checks its stamp then): such compiles are not reused.
    if compiler.runner.is_some() || !deterministic_args(&req.args) {
        return None;
    }
    let meta = std::fs::metadata(&compiler.path).ok()?;
    let binary = format!(
        "{}:{}.{}:{}",
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ino()
    );
    let mut env: Vec<_> = (req.env.iter())
        .filter(|(name, _)| homcc_proto::FORWARDED_ENV.contains(&name.as_str()))
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    env.sort();
    let input = KeyInput {
        format: FORMAT,
        identity: &req.compiler,
        compiler: &compiler.path,
        binary,
        target_args: &compiler.target_args,
        args: (req.args.iter())
            .zip(dep_marks(&req.args))
            .filter_map(|(arg, dep)| (!dep).then_some(arg))
            .collect(),
        cwd: &req.cwd,
        include_dirs: &req.include_dirs,
        implicit_includes: &req.implicit_includes,
        preprocessed: req.preprocessed,
        dirs: &req.dirs,
        manifest: req.manifest.iter().map(|c| c.digest).collect(),
        outputs: &req.outputs,
        env,
    };
    Some(Digest::of(&encode_record(&input).ok()?))
}

/// The dependency-file flags of `args`: `-MD`, `-MMD`, `-MP`, and `-MF`, `-MT`, `-MQ` with their
/// values. homcc sends them only when the server is to write the dependency file (the include
/// closure); when its scan cache answers, it writes the file itself and sends none. They change
/// nothing but that file, so they are not part of the key: both forms of a compile share its
/// record.
pub fn dep_args(args: &[OsString]) -> impl Iterator<Item = &OsString> {
    args.iter()
        .zip(dep_marks(args))
        .filter_map(|(arg, dep)| dep.then_some(arg))
}

/// For each of `args`, whether it is one of [`dep_args`].
fn dep_marks(args: &[OsString]) -> Vec<bool> {
    const WITH_VALUE: [&str; 3] = ["-MF", "-MT", "-MQ"];
    let mut marks = Vec::with_capacity(args.len());
    let mut value_next = false;
    for arg in args {
        let arg = arg.to_str().unwrap_or("");
        let is_value = std::mem::take(&mut value_next);
        value_next = WITH_VALUE.contains(&arg);
        let joined = WITH_VALUE
            .iter()
            .any(|f| arg.len() > 2 && arg.starts_with(f));
        marks.push(is_value || value_next || joined || ["-MD", "-MMD", "-MP"].contains(&arg));
    }
    marks
}

/// Whether `stored` answers `req`: a request whose dependency file the server is to write
/// needs a record made with the same dependency-file flags and path.
pub fn answers(stored: &Stored, req: &CompileRequest) -> bool {
    req.depfile.is_none()
        || (stored.depfile == req.depfile && stored.dep_args.iter().eq(dep_args(&req.args)))
}

/// Whether the arguments make a compile whose bytes depend only on its inputs: `-flto` without
/// `-frandom-seed` does not (gcc names the LTO sections with a random number).
fn deterministic_args(args: &[OsString]) -> bool {
    let has =
        |prefix: &str| (args.iter()).any(|a| a.to_str().is_some_and(|a| a.starts_with(prefix)));
    !has("-flto") || has("-frandom-seed")
}

/// Whether `bytes` use a macro whose value is the time of the compile.
pub fn uses_the_time(bytes: &[u8]) -> bool {
    ["__DATE__", "__TIME__", "__TIMESTAMP__"]
        .iter()
        .any(|name| memchr::memmem::find(bytes, name.as_bytes()).is_some())
}

/// The result cache of one server.
#[derive(Debug)]
pub struct Results {
    /// `<cache>/results-v1`.
    dir: PathBuf,
    cache: Cache,
    /// Keys being compiled now, with what their waiters learn when it is done.
    running: Mutex<HashMap<Digest, watch::Receiver<bool>>>,
    /// Blobs already scanned for the time macros: whether they use one.
    timed: Mutex<lru::LruCache<Digest, bool>>,
    /// The share of hits compiled again and compared with their record (`verify_results`).
    verify: f64,
    /// Compilers whose results differed from their record once: no longer cached.
    distrusted: Mutex<std::collections::HashSet<PathBuf>>,
}

/// What a compile of a key does, from [`Results::begin`].
#[derive(Debug)]
pub enum Begin {
    /// Answered from the record.
    Hit(Stored),
    /// This compile runs; it records its result with the guard.
    Run(Leader),
    /// Another compile of the same key runs: wait, then ask again.
    Wait(watch::Receiver<bool>),
}

/// The compile that runs for a key; waiters wake when it is dropped (recorded or not), and ask
/// again.
#[derive(Debug)]
pub struct Leader {
    key: Digest,
    done: watch::Sender<bool>,
    results: Arc<Results>,
}

impl Drop for Leader {
    fn drop(&mut self) {
        let mut running = self.results.running();
        running.remove(&self.key);
        let _ = self.done.send(true);
    }
}

impl Results {
    /// The result cache beside the blobs of `cache` in `dir`.
    pub fn open(dir: &Path, cache: Cache, verify: f64) -> io::Result<Arc<Results>> {
        let dir = dir.join("results-v1");
        std::fs::create_dir_all(&dir)?;
        Ok(Arc::new(Results {
            dir,
            cache,
            running: Mutex::new(HashMap::new()),
            timed: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(65536).expect("not zero"),
            )),
            verify,
            distrusted: Mutex::default(),
        }))
    }

    /// Whether results of `compiler` may be reused: none differed from its record.
    pub fn trusts(&self, compiler: &Path) -> bool {
        !(self
            .distrusted
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
        .contains(compiler)
    }

    /// Whether this hit is compiled again to check its record (`verify_results`).
    pub fn verifies(&self) -> bool {
        self.verify > 0.0 && fastrand::f64() < self.verify
    }

    /// A compile of `compiler` gave other bytes than the record of `key`: logs it, forgets the
    /// record, and reuses no result of that compiler from now on.
    pub fn mismatch(&self, key: &Digest, compiler: &Path) {
        tracing::warn!(
            %key, compiler = %compiler.display(),
            "a compile differs from its recorded result: results of this compiler are no longer reused"
        );
        let _ = std::fs::remove_file(self.index(key));
        (self
            .distrusted
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
        .insert(compiler.to_owned());
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, watch::Receiver<bool>>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The record of `key`, or the right to compile it, or a compile of it to wait for.
    pub fn begin(self: &Arc<Self>, key: Digest) -> Begin {
        if let Some(stored) = self.get(&key) {
            return Begin::Hit(stored);
        }
        let mut running = self.running();
        if let Some(done) = running.get(&key) {
            return Begin::Wait(done.clone());
        }
        let (done, waiters) = watch::channel(false);
        running.insert(key, waiters);
        Begin::Run(Leader {
            key,
            done,
            results: Arc::clone(self),
        })
    }

    fn index(&self, key: &Digest) -> PathBuf {
        let hex = key.to_string();
        self.dir.join(&hex[..2]).join(hex)
    }

    /// The stored result of `key`, if its record is still in the cache and reads back whole.
    pub fn get(&self, key: &Digest) -> Option<Stored> {
        let index = self.index(key);
        let named = std::fs::read_to_string(&index).ok()?;
        let record = Digest::from_hex(named.trim());
        let bytes = record.and_then(|d| self.cache.read(&d).ok().flatten());
        match bytes.and_then(|b: Vec<u8>| decode_record::<Stored>(&b).ok()) {
            Some(stored) => Some(stored),
            None => {
                // Evicted, or damaged: the next compile of the key records it again.
                let _ = std::fs::remove_file(&index);
                None
            }
        }
    }

    /// Records `stored` as the result of `key`.
    pub fn put(&self, key: &Digest, stored: &Stored) -> io::Result<()> {
        let bytes = encode_record(stored).map_err(io::Error::other)?;
        let record = Digest::of(&bytes);
        self.cache.insert(&record, &bytes)?;
        let index = self.index(key);
        std::fs::create_dir_all(index.parent().expect("two levels"))?;
        let tmp = index.with_extension("tmp");
        std::fs::write(&tmp, record.to_string())
            .and_then(|()| std::fs::rename(&tmp, &index))
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })
    }

    /// Whether any of `files` (blob digests, read from `root` at `paths`) uses the time
    /// macros; each blob is scanned once.
    pub fn any_uses_the_time<'a>(
        &self,
        files: impl IntoIterator<Item = (&'a Digest, &'a Path)>,
    ) -> bool {
        for (digest, path) in files {
            let known = (self.timed.lock().unwrap_or_else(PoisonError::into_inner))
                .get(digest)
                .copied();
            let uses = match known {
                Some(uses) => uses,
                None => {
                    let Ok(bytes) = std::fs::read(path) else {
                        return true;
                    };
                    let uses = uses_the_time(&bytes);
                    (self.timed.lock().unwrap_or_else(PoisonError::into_inner)).put(*digest, uses);
                    uses
                }
            };
            if uses {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_file_flags_are_told_apart() {
        let args: Vec<OsString> = "-O2 -c a.c -o a.o -MMD -MT a.o -MQ$x -MP -MF a.d -MFb.d -I-MF"
            .split(' ')
            .map(OsString::from)
            .collect();
        let deps: Vec<_> = dep_args(&args).map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            deps,
            ["-MMD", "-MT", "a.o", "-MQ$x", "-MP", "-MF", "a.d", "-MFb.d"]
        );
    }

    #[test]
    fn the_time_macros_are_found() {
        assert!(uses_the_time(b"const char *d = __DATE__;"));
        assert!(uses_the_time(b"__TIMESTAMP__"));
        assert!(!uses_the_time(b"__TIME_T__ __DATE"));
    }
}
