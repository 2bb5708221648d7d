//! Attacks on homccd: crafted requests from a raw client (homcc-proto, no homcc in the way) against
//! a real in-process server. Every case checks that the server refuses with the expected reason
//! and a detail naming the problem, or cuts the connection off, within a bounded time; that no
//! file appeared outside its job root and cache (each attack aims at an empty canary dir that the
//! test owns, and the cache may hold only blobs named by the digest of their content); and that
//! it still serves a normal compile from homcc right after.

use std::{
    cell::Cell,
    fs,
    net::SocketAddr,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::OnceLock,
    time::{Duration, Instant},
};

use futures_util::SinkExt;
use homcc_proto::{
    Blob, Chunk, ChunkFile, ChunkRef, ClientMessage, CompilerIdentity, Compression, Digest, Need,
    Payload, Refusal, RefusalReason, PROTOCOL_VERSION,
};
use homcc_server::{access::AllowedNetworks, Settings};
use homcc_tests::raw::{
    body, connect, frame, gxx_identity, next_answer, runtime, send_bytes, trickle, trickle_until,
    Answer, Conversation,
};
use homcc_tests::{homcc_lines, wait_for, Daemon, Project, TestServer};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// The longest a refusal may take (on a loaded machine) when nothing has to run first.
const QUICK: Duration = Duration::from_secs(10);
/// How long job roots and killed compilers may take to be gone.
const CLEANUP: Duration = Duration::from_secs(10);
/// The server's idle timeout in these tests.
const IDLE: Duration = Duration::from_secs(1);
/// The server's compile time limit in these tests.
const COMPILE_TIMEOUT: Duration = Duration::from_secs(2);
/// The source every attack compiles, unless it brings its own (it compresses well, for the lies
/// about compressed uploads).
const SOURCE: &[u8] =
    b"// ------------------------------------------------------------------------------------\n\
    int attacked(int x) { return x + 1; }\n";

/// Small limits, so that every bound is quick to reach; a normal compile of a C file fits.
fn strict(config: &mut Settings) {
    config.max_frame = 1 << 20;
    config.limits.manifest_entries = 10;
    config.limits.file_size = 16 << 10;
    config.limits.upload_size = 32 << 10;
    config.max_compiler_output = 1 << 20;
    config.compile_timeout = COMPILE_TIMEOUT;
    config.idle_timeout = IDLE;
}

/// The identity of g++, probed once.
fn gxx() -> CompilerIdentity {
    static GXX: OnceLock<CompilerIdentity> = OnceLock::new();
    GXX.get_or_init(gxx_identity).clone()
}

/// A server and a client directory to attack it from: `work/` is the client's working
/// directory, and `canary/`, which every attack aims at, must stay empty.
struct Arena {
    server: TestServer,
    dir: tempfile::TempDir,
    /// The files the test wrote in `work/`: nothing else may appear there.
    written: Vec<String>,
    /// Normal compiles run so far: the only compiles the server may have run.
    normal_compiles: Cell<usize>,
}

impl Arena {
    fn new(adjust: impl FnOnce(&mut Settings)) -> Arena {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("work")).unwrap();
        fs::create_dir(dir.path().join("canary")).unwrap();
        let mut arena = Arena {
            server: TestServer::fresh(adjust),
            dir,
            written: Vec::new(),
            normal_compiles: Cell::new(0),
        };
        arena.write("a.cpp", SOURCE);
        arena
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn canary(&self) -> PathBuf {
        self.dir.path().join("canary")
    }

    fn write(&mut self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.work().join(name);
        fs::write(&path, content).unwrap();
        self.written.push(name.to_owned());
        path
    }

    /// `text` with its placeholders filled in:
    /// - `ABS_UP_CANARY`: an absolute client path whose `..` would climb from the job root `R`
    ///   to the server's real `/` and on into the canary dir;
    /// - `UP_CANARY`: the same relative to the compiler's working directory `R/work`;
    /// - `CANARY`, `WORK`: the canary dir and the working directory as the client names them.
    fn expand(&self, text: &str) -> String {
        // R is `<cache>/jobs/job-XXXX/root`.
        let root_depth = depth(&self.server.cache_dir.canonicalize().unwrap()) + 3;
        let canary = self.canary().to_str().unwrap().to_owned();
        let below_root = canary.trim_start_matches('/');
        let abs_up = format!("/{}{below_root}", "../".repeat(root_depth));
        let up = format!(
            "{}{below_root}",
            "../".repeat(root_depth + depth(&self.work()))
        );
        text.replace("ABS_UP_CANARY", &abs_up)
            .replace("UP_CANARY", &up)
            .replace("CANARY", &canary)
            .replace("WORK", self.work().to_str().unwrap())
    }

    /// The honest compile of `a.cpp` in `work/` with `args` (expanded), writing `work/a.o`.
    fn conversation(&self, args: &[&str]) -> Conversation {
        self.conversation_of(&[("a.cpp", SOURCE)], args, Compression::None)
    }

    /// An honest compile in `work/` that reads `files` (names in `work/`), with `args`.
    fn conversation_of(
        &self,
        files: &[(&str, &[u8])],
        args: &[&str],
        compression: Compression,
    ) -> Conversation {
        let args: Vec<String> = args.iter().map(|a| self.expand(a)).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let files: Vec<(PathBuf, Vec<u8>)> = files
            .iter()
            .map(|(name, content)| (self.work().join(name), content.to_vec()))
            .collect();
        Conversation::new(
            gxx(),
            &self.work(),
            &args,
            &files,
            &[self.work().join("a.o")],
            compression,
        )
    }

    /// Sends `attack` and returns the server's answer, asserting that it came within `limit`.
    fn answer(&self, attack: &Attack, limit: Duration) -> Answer {
        let started = Instant::now();
        let addr = self.server.addr;
        let answer = runtime().block_on(async {
            match attack {
                Attack::Args(args) => self.conversation(args).run(addr).await,
                Attack::Request(change) | Attack::Forged(change) => {
                    let mut conversation = self.conversation(&["-c", "a.cpp", "-o", "a.o"]);
                    change(self, &mut conversation);
                    if let Attack::Request(_) = attack {
                        conversation.seal();
                    }
                    conversation.run(addr).await
                }
                Attack::Bytes(bytes) | Attack::BytesThenEof(bytes) => {
                    let mut conn = connect(addr).await;
                    let _ = send_bytes(&mut conn, &bytes(self)).await;
                    if let Attack::BytesThenEof(_) = attack {
                        let _ = conn.get_mut().shutdown().await;
                    }
                    next_answer(&mut conn).await
                }
                Attack::AfterNeed(message) => {
                    let conversation = self.conversation(&["-c", "a.cpp", "-o", "a.o"]);
                    let (mut conn, need) = conversation.ask(addr).await;
                    let _ = conn.send(message(self, &conversation, &need)).await;
                    next_answer(&mut conn).await
                }
            }
        });
        assert!(
            started.elapsed() < limit,
            "the answer took {:?} (more than {limit:?}): {answer:?}",
            started.elapsed()
        );
        answer
    }

    /// Checks 2 and 3 of every case: nothing was written outside the job root and the cache, no
    /// compiler was left running, and a normal compile from homcc still works.
    fn assert_unharmed(&self) {
        self.assert_nothing_escaped();
        assert_only_a_cache(&self.server.cache_dir);
        self.assert_normal_compile();
        let results = self
            .server
            .records()
            .into_iter()
            .filter(|r| r.outcome.starts_with("exit "))
            .count();
        assert_eq!(
            results,
            self.normal_compiles.get(),
            "only the normal compiles ran: {:#?}",
            self.server.records()
        );
    }

    fn assert_normal_compile(&self) {
        assert_normal_compile(&self.server);
        self.normal_compiles.set(self.normal_compiles.get() + 1);
    }

    fn assert_nothing_escaped(&self) {
        assert_eq!(
            names(&self.canary()),
            Vec::<String>::new(),
            "in the canary dir"
        );
        assert_eq!(
            names(self.dir.path()),
            ["canary", "work"],
            "in the test's dir"
        );
        let mut written = self.written.clone();
        written.sort();
        assert_eq!(names(&self.work()), written, "in the client's dir");
    }
}

/// Components of an absolute path below `/`.
fn depth(path: &Path) -> usize {
    path.components().count() - 1
}

/// The sorted names in `dir`.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Asserts that `cache` holds only what homccd's cache holds (docs/cache.md): `blobs-v1/` with
/// an empty `tmp/` and read-only files in two-hex-digit shards, each named by the digest of its
/// content, and `jobs/`, whose job roots must become scrubbed (in the background, after each
/// compile): kept for the client's next compile, each holds only directories and hard links
/// to cached files, with an empty `tmp/`; and that no process runs there any more.
fn assert_only_a_cache(cache: &Path) {
    wait_for("the job roots to be scrubbed or deleted", CLEANUP, || {
        names(&cache.join("jobs"))
            .iter()
            .all(|job| scrubbed(cache, &cache.join("jobs").join(job)))
    });
    wait_for("no process running in the cache dir", CLEANUP, || {
        processes_in(cache).is_empty()
    });
    let want = ["blobs-v1", "jobs", "results-v1"];
    assert_eq!(names(cache), want, "in {}", cache.display());
    let blobs = cache.join("blobs-v1");
    wait_for("no upload in progress", CLEANUP, || {
        names(&blobs.join("tmp")).is_empty()
    });
    for shard in names(&blobs).into_iter().filter(|s| s != "tmp") {
        let dir = blobs.join(&shard);
        assert!(
            shard.len() == 2 && dir.is_dir(),
            "{} is not a shard",
            dir.display()
        );
        for name in names(&dir) {
            let path = dir.join(&name);
            let meta = fs::symlink_metadata(&path).unwrap();
            assert!(meta.is_file(), "{} is not a file", path.display());
            assert_eq!(meta.mode() & 0o777, 0o444, "{} is writable", path.display());
            let content = fs::read(&path).unwrap();
            assert_eq!(
                Digest::of(&content).to_hex(),
                name,
                "{} does not hold what its name says",
                path.display()
            );
            assert!(
                name.starts_with(&shard),
                "{} in the wrong shard",
                path.display()
            );
        }
    }
}

/// Whether the job dir `job` holds an empty `tmp/` and a `root/` of directories and files that
/// are the cache's own (hard links: the inode of a file under `cache`'s `blobs-v1`).
fn scrubbed(cache: &Path, job: &Path) -> bool {
    let blobs = cache.join("blobs-v1");
    let mut inodes = std::collections::HashSet::new();
    for shard in names(&blobs) {
        for name in fs::read_dir(blobs.join(shard))
            .into_iter()
            .flatten()
            .flatten()
        {
            inodes.insert(name.metadata().map_or(0, |m| m.ino()));
        }
    }
    if fs::read_dir(job.join("tmp")).map_or(true, |mut d| d.next().is_some()) {
        return false;
    }
    let mut dirs = vec![job.join("root")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            return false;
        };
        for entry in entries.flatten() {
            let Ok(meta) = fs::symlink_metadata(entry.path()) else {
                return false;
            };
            if meta.is_dir() {
                dirs.push(entry.path());
            } else if !(meta.is_file() && inodes.contains(&meta.ino())) {
                return false;
            }
        }
    }
    true
}

/// Processes (pid and name) whose working directory is under `dir`.
fn processes_in(dir: &Path) -> Vec<(u32, String)> {
    let dir = dir.canonicalize().unwrap();
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cwd = fs::read_link(entry.path().join("cwd")).ok()?;
            let name = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            cwd.starts_with(&dir).then(|| (pid, name.trim().to_owned()))
        })
        .collect()
}

/// A compile from another client, the real homcc: it must run remotely (no `homcc:` line, a new
/// server record `exit 0`) with the local compile's result. Other connections may still be
/// recorded meanwhile (an attack the server has not given up on yet).
fn assert_normal_compile(server: &TestServer) {
    let project = Project::new();
    project.write("a.c", "int normal(void) { return 42; }\n");
    let args = ["-c", "a.c"];
    let local = project.local("gcc", &args);
    assert!(local.status.success());
    let local_object = project.take(&["a.o"]);
    let exits = || {
        server
            .records()
            .iter()
            .filter(|r| r.outcome == "exit 0")
            .count()
    };
    let before = exits();
    let out = project.homcc(&["--host", &server.host()], "gcc", &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "homcc failed: {stderr}");
    assert_eq!(homcc_lines(&out.stderr), Vec::<String>::new(), "{stderr}");
    assert_eq!(stderr, String::from_utf8_lossy(&local.stderr));
    assert_eq!(project.take(&["a.o"]), local_object, "a.o differs");
    wait_for("the server's record of the normal compile", CLEANUP, || {
        exits() > before
    });
    assert_eq!(exits(), before + 1);
}

/// What a case sends.
enum Attack {
    /// The compile of `a.cpp` with these arguments (placeholders expanded), otherwise honest.
    Args(&'static [&'static str]),
    /// `-c a.cpp -o a.o`, changed before it is sent; the chunks get their true digests.
    Request(fn(&Arena, &mut Conversation)),
    /// The same, with the digests as they were before the change.
    Forged(fn(&Arena, &mut Conversation)),
    /// These bytes right after connecting.
    Bytes(fn(&Arena) -> Vec<u8>),
    /// These bytes, then the end of the stream.
    BytesThenEof(fn(&Arena) -> Vec<u8>),
    /// An honest request, then this message instead of the uploads its `Need` asks for.
    AfterNeed(fn(&Arena, &Conversation, &Need) -> ClientMessage),
}

/// The server's expected last word.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// `Refused` for this reason, with a detail that contains the text.
    Refused(RefusalReason, &'static str),
    /// The connection ends without a reply.
    Closed,
}

fn forbidden(names: &'static str) -> Expect {
    Expect::Refused(RefusalReason::Forbidden, names)
}

fn invalid(names: &'static str) -> Expect {
    Expect::Refused(RefusalReason::InvalidRequest, names)
}

fn limit(names: &'static str) -> Expect {
    Expect::Refused(RefusalReason::Limit, names)
}

fn version_refused(names: &'static str) -> Expect {
    Expect::Refused(
        RefusalReason::Version {
            server: PROTOCOL_VERSION,
        },
        names,
    )
}

fn mismatch(names: &'static str) -> Expect {
    Expect::Refused(RefusalReason::CompilerMismatch, names)
}

#[track_caller]
fn assert_answer(answer: &Answer, expect: Expect) {
    match (answer, expect) {
        (Answer::Refused(Refusal { reason, detail }), Expect::Refused(wanted, names)) => {
            assert_eq!(*reason, wanted, "refused for another reason: {detail}");
            assert!(detail.contains(names), "{detail:?} does not name {names:?}");
        }
        (Answer::Closed(_), Expect::Closed) => {}
        (answer, expect) => panic!("expected {expect:?}, got {answer:?}"),
    }
}

/// Runs one case of the tables below against a fresh strict server.
fn check(attack: Attack, expect: Expect) {
    let arena = Arena::new(strict);
    let answer = arena.answer(&attack, QUICK);
    assert_answer(&answer, expect);
    arena.assert_unharmed();
}

/// One test per line: `name: attack => expected;`.
macro_rules! cases {
    ($($name:ident: $attack:expr => $expect:expr;)*) => {
        $(
            #[test]
            fn $name() {
                check($attack, $expect);
            }
        )*
    };
}

use Attack::{AfterNeed, Args, Bytes, BytesThenEof, Forged, Request};
use Compression::{Lzma, Lzo, Zstd};

// Flags that run or load code, or read or write files outside the job root: the argument
// policy refuses them before a slot is taken or a file is written.
cases! {
    wrapper: Args(&["-c", "a.cpp", "-wrapper", "/bin/sh,-c,touch CANARY/pwned"]) => forbidden("-wrapper");
    prefix_b: Args(&["-c", "a.cpp", "-B", "CANARY"]) => forbidden("-B");
    prefix_b_joined: Args(&["-c", "a.cpp", "-BCANARY/"]) => forbidden("-B/");
    specs: Args(&["-c", "a.cpp", "-specs=CANARY/x.specs"]) => forbidden("-specs=");
    fplugin: Args(&["-c", "a.cpp", "-fplugin=CANARY/x.so"]) => forbidden("-fplugin=");
    fpass_plugin: Args(&["-c", "a.cpp", "-fpass-plugin=CANARY/x.so"]) => forbidden("-fpass-plugin=");
    xclang_load: Args(&["-c", "a.cpp", "-Xclang", "-load", "-Xclang", "CANARY/x.so"]) => forbidden("-Xclang -load");
    xclang_plugin: Args(&["-c", "a.cpp", "-Xclang", "-plugin", "-Xclang", "x"]) => forbidden("-Xclang -plugin");
    xclang_add_plugin: Args(&["-c", "a.cpp", "-Xclang", "-add-plugin", "-Xclang", "x"]) => forbidden("-Xclang -add-plugin");
    gcc_toolchain: Args(&["-c", "a.cpp", "--gcc-toolchain=CANARY"]) => forbidden("--gcc-toolchain=");
    ccc_gcc_name: Args(&["-c", "a.cpp", "-ccc-gcc-name", "x"]) => forbidden("-ccc-gcc-name");
    config_file: Args(&["-c", "a.cpp", "--config=CANARY/x.cfg"]) => forbidden("--config=");
    response_file: Args(&["-c", "a.cpp", "@CANARY/args"]) => forbidden("@");
    response_file_as_value: Args(&["-c", "a.cpp", "-o", "@CANARY/args"]) => forbidden("@");
    profile_use: Args(&["-c", "a.cpp", "-fprofile-use=CANARY/x.profdata"]) => forbidden("-fprofile-use=");
    profile_generate: Args(&["-c", "a.cpp", "-fprofile-generate=CANARY"]) => forbidden("-fprofile-generate=");
    profile_instr_use: Args(&["-c", "a.cpp", "-fprofile-instr-use=CANARY/x"]) => forbidden("-fprofile-instr-use=");
    sanitize_ignorelist: Args(&["-c", "a.cpp", "-fsanitize-ignorelist=CANARY/x.txt"]) => forbidden("-fsanitize-ignorelist=");
    save_temps: Args(&["-c", "a.cpp", "-save-temps"]) => forbidden("-save-temps");
    dump_tree: Args(&["-c", "a.cpp", "-fdump-tree-original=CANARY/x"]) => forbidden("-fdump-tree-original=");
    time_trace: Args(&["-c", "a.cpp", "-ftime-trace=CANARY/x.json"]) => forbidden("-ftime-trace=");
    dumpdir: Args(&["-c", "a.cpp", "-dumpdir", "CANARY/"]) => forbidden("-dumpdir");
    assembler_listing: Args(&["-c", "a.cpp", "-Wa,-adhln=CANARY/x.lst"]) => forbidden("-Wa,-adhln=");
    preprocessor_depfile: Args(&["-c", "a.cpp", "-Wp,-MD,CANARY/x.d"]) => forbidden("-Wp,-MD");
    path_in_f_flag: Args(&["-c", "a.cpp", "-fstack-protector-strong/../CANARY"]) => forbidden("-fstack-protector-strong/");
    links: Args(&["a.cpp", "-o", "CANARY/a.out"]) => forbidden("homccd never links");
}

// Paths: every client path must stay inside the job root, so each of these aims at the canary
// dir outside it (where `..` from the job root would lead on the server's disk).
cases! {
    output_climbs_from_cwd: Args(&["-c", "a.cpp", "-o", "UP_CANARY/x.o"]) => invalid("leaves the job root");
    output_climbs_from_root: Args(&["-c", "a.cpp", "-o", "ABS_UP_CANARY/x.o"]) => invalid("leaves the job root");
    depfile_climbs: Args(&["-c", "a.cpp", "-MD", "-MF", "UP_CANARY/x.d"]) => invalid("leaves the job root");
    include_dir_climbs: Args(&["-c", "a.cpp", "-IUP_CANARY"]) => invalid("leaves the job root");
    forced_include_climbs: Args(&["-c", "a.cpp", "-include", "ABS_UP_CANARY/x.h"]) => invalid("leaves the job root");
    source_climbs: Args(&["-c", "UP_CANARY/x.cpp"]) => invalid("leaves the job root");
    outputs_climb: Request(|a, c| c.request.outputs = vec![a.expand("ABS_UP_CANARY/x.o").into()]) => invalid("not normal");
    outputs_relative: Request(|_, c| c.request.outputs = vec!["a.o".into()]) => invalid("not absolute");
    depfile_field_climbs: Request(|a, c| c.request.depfile = Some(a.expand("ABS_UP_CANARY/x.d").into())) => invalid("not normal");
    depfile_field_relative: Request(|_, c| c.request.depfile = Some("a.d".into())) => invalid("not absolute");
    cwd_climbs: Request(|a, c| c.request.cwd = a.expand("ABS_UP_CANARY").into()) => invalid("leaves the job root");
    cwd_relative: Request(|_, c| c.request.cwd = "work".into()) => invalid("not absolute");
    builtin_include_dir_climbs: Request(|a, c| c.request.include_dirs = vec![a.expand("ABS_UP_CANARY").into()]) => invalid("leaves the job root");
    implicit_include_climbs: Request(|a, c| c.request.implicit_includes = vec![a.expand("ABS_UP_CANARY/x.h").into()]) => invalid("leaves the job root");
    include_dirs_climb: Request(|a, c| c.request.dirs = vec![a.expand("ABS_UP_CANARY").into()]) => invalid("not normal");
    include_dirs_dot_dot: Request(|a, c| c.request.dirs = vec![a.expand("CANARY/../escape").into()]) => invalid("not normal");
    chunk_dir_dot_dot: Request(|a, c| c.chunk_mut().dir = a.expand("CANARY/../escape")) => invalid("not normal");
    chunk_dir_climbs: Request(|a, c| c.chunk_mut().dir = a.expand("ABS_UP_CANARY")) => invalid("not normal");
    chunk_dir_relative: Request(|_, c| c.chunk_mut().dir = "canary".into()) => invalid("not absolute");
    chunk_dir_empty_component: Request(|a, c| c.chunk_mut().dir = a.expand("WORK//canary")) => invalid("not normal");
    chunk_dir_nul: Request(|a, c| c.chunk_mut().dir = a.expand("CANARY/x\0y")) => invalid("NUL byte");
    chunk_dir_too_long: Request(|_, c| c.chunk_mut().dir = format!("/{}", "a/".repeat(2100))) => invalid("longer than 4096 bytes");
    file_name_climbs: Request(|a, c| c.chunk_mut().files[0].name = a.expand("UP_CANARY/a.cpp")) => invalid("not one path component");
    file_name_dot_dot: Request(|_, c| c.chunk_mut().files[0].name = "..".into()) => invalid("not one path component");
    file_name_absolute: Request(|a, c| c.chunk_mut().files[0].name = a.expand("ABS_UP_CANARY/a.cpp")) => invalid("not one path component");
}

// Frames out of order, malformed or too large.
cases! {
    oversized_frame: Bytes(|_| (2u32 << 20).to_be_bytes().to_vec()) => invalid("exceeds the limit");
    largest_frame_header: Bytes(|_| u32::MAX.to_be_bytes().to_vec()) => invalid("exceeds the limit");
    truncated_header: BytesThenEof(|_| vec![0, 0]) => invalid("bytes remaining");
    truncated_frame: BytesThenEof(|a| frame(&body(&compile(a)))[..40].to_vec()) => invalid("bytes remaining");
    garbage_frame: Bytes(|_| frame(b"\xfe\xed\xfa\xce garbage \x00\xff\x13\x37 that decodes to nothing")) => invalid("malformed");
    not_the_protocol: Bytes(|_| b"GET / HTTP/1.1\r\nHost: homccd\r\n\r\n".to_vec()) => invalid("exceeds the limit");
    empty_frame: Bytes(|_| frame(b"")) => invalid("malformed");
    unknown_message: Bytes(|_| frame(&[0x7f, 1, 2, 3])) => invalid("malformed");
    bytes_after_the_request: Bytes(|a| frame(&[body(&compile(a)), vec![0]].concat())) => invalid("left over");
    wrong_version: Request(|_, c| c.request.version = 99) => version_refused("protocol version 99");
    wrong_version_undecodable: Bytes(|_| frame(&[0, 98, 0xff, 0xff, 0xff])) => version_refused("protocol version 98");
    blob_before_request: Bytes(|_| frame(&body(&blob_of(SOURCE)))) => invalid("first frame must be a Compile");
    second_compile: AfterNeed(|a, _, _| compile(a)) => invalid("second Compile");
    blob_not_asked_for: AfterNeed(|_, _, _| blob_of(b"int other;\n")) => invalid("was not asked for");
    chunks_not_asked_for: AfterNeed(|_, c, _| ClientMessage::Chunks(c.chunks.values().cloned().collect())) => invalid("was not asked for");
    compiler_not_allowed: Request(|_, c| c.request.compiler.name = "sh".into()) => mismatch("compiler sh");
    compiler_path: Request(|_, c| c.request.compiler.name = "/bin/sh".into()) => mismatch("compiler /bin/sh");
}

// Uploads that lie, and manifests and uploads above the limits.
cases! {
    blob_content_lies: Request(|_, c| instead(c, packed(Compression::None, &swapped(SOURCE)))) => invalid("does not match its digest");
    blob_size_lies: Request(|_, c| instead(c, claiming(SOURCE.len() + 1, packed(Compression::None, SOURCE)))) => invalid("the manifest says");
    chunk_digest_lies: Forged(|_, c| c.chunk_mut().files[0].size += 1) => invalid("does not match its digest");
    chunk_by_digest_lies: Request(|_, c| forge_unknown_chunk(c)) => invalid("was not asked for");
    lzo_other_content: Request(|_, c| instead(c, packed(Lzo, &swapped(SOURCE)))) => invalid("does not match its digest");
    lzo_longer_content: Request(|_, c| instead(c, claiming(SOURCE.len(), packed(Lzo, &[SOURCE, SOURCE].concat())))) => invalid("lzo data");
    lzo_shorter_content: Request(|_, c| instead(c, claiming(SOURCE.len(), packed(Lzo, &SOURCE[..60])))) => invalid("lzo data");
    lzo_garbage: Request(|_, c| instead(c, claiming(SOURCE.len(), raw(Lzo, b"\x00 not an LZO stream \xff")))) => invalid("lzo data is corrupt");
    lzma_other_content: Request(|_, c| instead(c, packed(Lzma, &swapped(SOURCE)))) => invalid("does not match its digest");
    lzma_longer_content: Request(|_, c| instead(c, claiming(SOURCE.len(), packed(Lzma, &[SOURCE, SOURCE].concat())))) => invalid("lzma data");
    lzma_garbage: Request(|_, c| instead(c, claiming(SOURCE.len(), raw(Lzma, b"\xfd7zXZ\x00 truncated")))) => invalid("lzma data is corrupt");
    zstd_other_content: Request(|_, c| instead(c, packed(Zstd, &swapped(SOURCE)))) => invalid("does not match its digest");
    zstd_longer_content: Request(|_, c| instead(c, claiming(SOURCE.len(), packed(Zstd, &[SOURCE, SOURCE].concat())))) => invalid("zstd data decompresses to");
    zstd_shorter_content: Request(|_, c| instead(c, claiming(SOURCE.len(), packed(Zstd, &SOURCE[..80])))) => invalid("zstd data decompresses to");
    zstd_bomb: Request(|_, c| instead(c, claiming(SOURCE.len(), packed(Zstd, &vec![0; 64 << 20])))) => invalid("zstd data decompresses to");
    zstd_garbage: Request(|_, c| instead(c, claiming(SOURCE.len(), raw(Zstd, b"\x28\xb5\x2f\xfd truncated")))) => invalid("zstd data is corrupt");
    too_many_files: Request(|_, c| add_headers(c, 10, 16)) => limit("max_manifest_entries");
    too_many_chunks: Request(|_, c| add_chunks(c, 10)) => limit("max_manifest_entries");
    file_too_large: Request(|_, c| add_headers(c, 1, 17 << 10)) => limit("max_file_size");
    file_size_absurd: Request(|_, c| c.chunk_mut().files[0].size = u64::MAX) => limit("max_file_size");
    upload_too_large: Request(|_, c| add_headers(c, 3, 12 << 10)) => limit("max_upload_size");
}

// Fields that cost the server memory or reach the compiler: each output once, a compiler target
// that is a target triple (probes are cached by it), environment values of known shapes (a `LANGUAGE` that climbs would load a message catalog the client sent).
cases! {
    duplicate_outputs: Request(|a, c| c.request.outputs = vec![a.work().join("a.o"); 24]) => invalid("is listed twice");
    depfile_field_is_an_output: Request(|_, c| c.request.depfile = c.request.outputs.first().cloned()) => invalid("is listed twice");
    language_climbs: Request(|_, c| c.request.env = vec![("LANGUAGE".into(), "../../../proc/self/cwd/evil".into())]) => invalid("LANGUAGE=");
    lc_messages_path: Request(|_, c| c.request.env = vec![("LC_MESSAGES".into(), "/tmp/evil".into())]) => invalid("LC_MESSAGES=");
    lang_dot_dot: Request(|_, c| c.request.env = vec![("LANG".into(), "..".into())]) => invalid("LANG=");
    target_not_a_triple: Request(|_, c| c.request.compiler.target = "x".repeat(100 << 10)) => mismatch("is not a target triple");
    target_with_a_flag: Request(|_, c| c.request.compiler.target = "x86_64-linux-gnu -B/tmp".into()) => mismatch("is not a target triple");
    source_date_epoch_text: Request(|_, c| c.request.env = vec![("SOURCE_DATE_EPOCH".into(), "1%s%s%n".into())]) => invalid("SOURCE_DATE_EPOCH=");
}

/// A client's strings reach homccd's log as one escaped line each, at most 500 characters: a
/// newline in the compiler's name forges no log line, and a 300 KiB name fills no log.
#[test]
fn client_strings_in_the_log_are_one_short_line() {
    let arena = Arena::new(strict);
    for name in [
        "g++\n2026-01-01T00:00:00Z  INFO forged line",
        &"x".repeat(300 << 10),
    ] {
        let mut conversation = arena.conversation(&["-c", "a.cpp", "-o", "a.o"]);
        conversation.request.compiler.name = name.to_owned();
        conversation.request.compiler.target = name.to_owned();
        let answer = runtime().block_on(conversation.run(arena.server.addr));
        assert_answer(&answer, mismatch("compiler"));
    }
    for record in arena.server.records() {
        assert!(!record.compiler.contains('\n'), "{:?}", record.compiler);
        assert!(
            record.compiler.len() < 600,
            "{} bytes",
            record.compiler.len()
        );
    }
    arena.assert_unharmed();
}

/// An honest `Compile` of `a.cpp`.
fn compile(arena: &Arena) -> ClientMessage {
    let conversation = arena.conversation(&["-c", "a.cpp", "-o", "a.o"]);
    ClientMessage::Compile(Box::new(conversation.request))
}

/// The honest `Blob` of `content`.
fn blob_of(content: &[u8]) -> ClientMessage {
    ClientMessage::Blob(Blob {
        digest: Digest::of(content),
        payload: Payload::pack(Compression::None, content),
    })
}

/// `content` compressed with `compression`, which must shrink it.
fn packed(compression: Compression, content: &[u8]) -> Payload {
    let payload = Payload::pack(compression, content);
    assert_eq!(
        payload.compression, compression,
        "the test content must compress"
    );
    payload
}

/// `data` as it is, announced as compressed with `compression`.
fn raw(compression: Compression, data: &[u8]) -> Payload {
    Payload {
        compression,
        size: data.len() as u64,
        data: data.to_vec(),
    }
}

/// `payload` announcing `size` bytes.
fn claiming(size: usize, payload: Payload) -> Payload {
    Payload {
        size: size as u64,
        ..payload
    }
}

/// Other bytes of the same length: `content` with its case swapped.
fn swapped(content: &[u8]) -> Vec<u8> {
    let other: Vec<u8> = content
        .iter()
        .map(|b| {
            if b.is_ascii_alphabetic() {
                b ^ 0x20
            } else {
                *b
            }
        })
        .collect();
    assert_ne!(other, content);
    other
}

/// Sends `payload` in the blob of `a.cpp`.
fn instead(conversation: &mut Conversation, payload: Payload) {
    let blob = conversation
        .blobs
        .get_mut(&Digest::of(SOURCE))
        .expect("the blob of a.cpp");
    blob.payload = payload;
}

/// Adds `count` headers of `size` bytes each (all different) to the first chunk.
fn add_headers(conversation: &mut Conversation, count: usize, size: usize) {
    for i in 0..count {
        let mut content = format!("// header {i}\n").into_bytes();
        content.resize(size, b'/');
        let digest = Digest::of(&content);
        conversation.chunk_mut().files.push(ChunkFile {
            name: format!("h{i:02}.h"),
            digest,
            size: content.len() as u64,
        });
        conversation.blobs.insert(
            digest,
            Blob {
                digest,
                payload: Payload::pack(Compression::None, &content),
            },
        );
    }
}

/// Adds `count` chunks of one (empty) header each to the manifest, each in its own directory.
fn add_chunks(conversation: &mut Conversation, count: usize) {
    let dir = conversation.request.cwd.clone();
    for i in 0..count {
        let chunk = Chunk {
            dir: format!("{}/d{i}", dir.display()),
            files: vec![ChunkFile {
                name: "x.h".into(),
                digest: Digest::of(b""),
                size: 0,
            }],
        };
        conversation.request.manifest.push(ChunkRef {
            digest: chunk.digest(),
            inline: Some(chunk),
        });
    }
}

/// Sends the first chunk by digest alone (so the server asks for it) and answers with another.
fn forge_unknown_chunk(conversation: &mut Conversation) {
    let chunk = conversation.request.manifest[0].inline.take().unwrap();
    let digest = chunk.digest();
    let mut other = chunk;
    other.files[0].size += 1;
    conversation.chunks.insert(digest, other);
}

// --- Attacks on resources: connections, time, output. ---

/// Silent connections, one that stops inside a frame header and one that goes quiet during its
/// upload are closed after the idle timeout; a normal compile works meanwhile.
#[test]
fn slowloris_is_cut_off() {
    let arena = Arena::new(strict);
    let rt = runtime();
    let addr = arena.server.addr;
    let conversation = arena.conversation(&["-c", "a.cpp", "-o", "a.o"]);
    let started = Instant::now();
    let mut conns = rt.block_on(async {
        let mut conns = Vec::new();
        for _ in 0..3 {
            conns.push(connect(addr).await);
        }
        let mut partial = connect(addr).await;
        send_bytes(&mut partial, &[0, 0]).await.unwrap();
        conns.push(partial);
        let mut uploading = connect(addr).await;
        let request = ClientMessage::Compile(Box::new(conversation.request.clone()));
        uploading.send(request).await.unwrap();
        match next_answer(&mut uploading).await {
            Answer::Need(need) => assert!(!need.blobs.is_empty(), "{need:?}"),
            other => panic!("expected a Need, got {other:?}"),
        }
        conns.push(uploading);
        conns
    });
    arena.assert_normal_compile();
    rt.block_on(async {
        for conn in &mut conns {
            assert_answer(&next_answer(conn).await, Expect::Closed);
        }
    });
    assert!(
        started.elapsed() < IDLE + QUICK,
        "cut off after {:?}",
        started.elapsed()
    );
    let mut lost = wait_for_lost(&arena.server, 5);
    lost.sort();
    assert_eq!(
        lost,
        [
            ["lost: no whole request within 1 s"; 4].as_slice(),
            &["lost: upload silent for 1 s"]
        ]
        .concat()
    );
    arena.assert_unharmed();
}

/// A client that sends a byte less often than the idle timeout is cut off at the first gap.
#[test]
fn trickling_slower_than_the_idle_timeout_is_cut_off() {
    let arena = Arena::new(strict);
    let started = Instant::now();
    let answer = runtime().block_on(async {
        let mut conn = connect(arena.server.addr).await;
        let request = frame(&body(&compile(&arena)));
        for byte in request {
            if send_bytes(&mut conn, &[byte]).await.is_err() {
                break;
            }
            tokio::select! {
                answer = next_answer(&mut conn) => return answer,
                _ = tokio::time::sleep(IDLE * 3) => {}
            }
        }
        panic!(
            "homccd read the whole request one byte every {:?}",
            IDLE * 3
        );
    });
    assert_answer(&answer, Expect::Closed);
    assert!(
        started.elapsed() < QUICK,
        "cut off after {:?}",
        started.elapsed()
    );
    wait_for_lost(&arena.server, 1);
    arena.assert_unharmed();
}

/// A client that holds its place by trickling its upload, each byte within the idle timeout, is
/// refused once it falls behind `min_upload_rate` (1 KiB/s here, after the grace of the idle
/// timeout): it cannot hold one of the `limit` places for longer (one byte a second, or a minute
/// with the default idle timeout, once kept every place taken for as long as the upload lasted).
#[test]
fn an_upload_below_the_minimum_rate_is_refused() {
    let (arena, attack, header) = one_place_and_an_8_kib_header(1 << 10);
    let started = Instant::now();
    let answer = runtime().block_on(async {
        let (mut conn, _) = attack.ask(arena.server.addr).await;
        trickle(&mut conn, &blob_frame(&attack, header), IDLE / 4).await
    });
    assert!(
        started.elapsed() < QUICK,
        "answered after {:?}",
        started.elapsed()
    );
    assert_answer(
        &answer,
        Expect::Refused(RefusalReason::Timeout, "min_upload_rate"),
    );
    arena.assert_unharmed();
}

/// A place held by an upload is provisional: with the only place held by a client trickling its
/// upload (no minimum rate here), a normal compile uploads without a place and takes that one
/// once its files are in; it runs remotely at once (it was refused as busy until the
/// attacker's upload ended, however long that took).
#[test]
fn a_trickled_upload_on_every_place_does_not_keep_a_compile_out() {
    let (arena, attack, header) = one_place_and_an_8_kib_header(0);
    let trickler = Trickler::start(arena.server.addr, attack, header, IDLE / 4);
    let victim = Project::new();
    victim.write("v.c", "int v(void) { return 1; }\n");
    let out = victim
        .homcc_command(&["--host", &arena.server.host()], "gcc", &["-c", "v.c"])
        .env("HOMCC_COMPILATION_REQUEST_TIMEOUT", "5")
        .output()
        .unwrap();
    trickler.stop();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        homcc_lines(&out.stderr),
        Vec::<String>::new(),
        "compiled remotely"
    );
}

/// A strict server with a single place and `min_upload_rate`, and a compile that reads an
/// 8 KiB header (its digest) besides its source.
fn one_place_and_an_8_kib_header(min_upload_rate: u64) -> (Arena, Conversation, Digest) {
    let arena = Arena::new(|config| {
        strict(config);
        config.limit = 1;
        config.queue = Some(0);
        config.min_upload_rate = min_upload_rate;
    });
    let header = vec![b'x'; 8 << 10];
    let attack = arena.conversation_of(
        &[("a.cpp", SOURCE), ("h.h", &header)],
        &["-c", "a.cpp"],
        Compression::None,
    );
    (arena, attack, Digest::of(&header))
}

/// The framed `Blob` of `file`, as `conversation` uploads it.
fn blob_frame(conversation: &Conversation, file: Digest) -> Vec<u8> {
    frame(&body(&ClientMessage::Blob(
        conversation.blobs[&file].clone(),
    )))
}

/// A raw client on its own thread that sends its request and, once asked, trickles the blob of
/// one file a byte per `gap` until the server answers or it is stopped.
struct Trickler {
    stop: CancellationToken,
    thread: std::thread::JoinHandle<()>,
}

impl Trickler {
    /// Returns once the server has asked for the files (the upload is claimed, the place held).
    fn start(addr: SocketAddr, attack: Conversation, file: Digest, gap: Duration) -> Trickler {
        let (asked, stop) = (std::sync::mpsc::channel(), CancellationToken::new());
        let thread = std::thread::spawn({
            let (asked, stop) = (asked.0, stop.clone());
            move || {
                runtime().block_on(async move {
                    let (mut conn, _) = attack.ask(addr).await;
                    asked.send(()).unwrap();
                    trickle_until(&mut conn, &blob_frame(&attack, file), gap, &stop).await;
                })
            }
        });
        asked.1.recv().unwrap();
        Trickler { stop, thread }
    }

    fn stop(self) {
        self.stop.cancel();
        self.thread.join().unwrap();
    }
}

/// Frames being read take their announced length from `max_frame_memory`, shared by every
/// connection: of three connections that each start a 1 MiB frame and stop halfway, one is
/// refused as busy at once when 2.5 MiB are all there is (15 such frames of 60 MiB once held
/// 900 MiB); the other two are cut off at the idle timeout, as any stalled request.
#[test]
fn partial_frames_take_no_more_than_the_frame_memory() {
    let arena = Arena::new(|config| {
        strict(config);
        config.max_frame_memory = (5 << 20) / 2;
    });
    let addr = arena.server.addr;
    let answers = runtime().block_on(async {
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut conn = connect(addr).await;
            let mut half = (1u32 << 20).to_be_bytes().to_vec();
            half.resize(4 + (512 << 10), 0);
            send_bytes(&mut conn, &half).await.unwrap();
            held.push(conn);
        }
        futures_util::future::join_all(held.iter_mut().map(next_answer)).await
    });
    let busy = answers
        .iter()
        .filter(|a| matches!(a, Answer::Refused(r) if r.reason == RefusalReason::Busy && r.detail.contains("max_frame_memory")))
        .count();
    let closed = answers
        .iter()
        .filter(|a| matches!(a, Answer::Closed(_)))
        .count();
    assert_eq!((busy, closed), (1, 2), "{answers:#?}");
    arena.assert_unharmed();
}

/// Waits until the server has recorded `count` lost connections; returns their outcomes.
fn wait_for_lost(server: &TestServer, count: usize) -> Vec<String> {
    let lost = || -> Vec<String> {
        server
            .records()
            .into_iter()
            .map(|r| r.outcome)
            .filter(|o| o.starts_with("lost:"))
            .collect()
    };
    wait_for("the server to record the lost connections", QUICK, || {
        lost().len() >= count
    });
    lost()
}

/// One address may hold two connections: the others of a flood are refused as busy at once,
/// and once the flood is over a normal compile works.
#[test]
fn connection_flood_from_one_address_is_refused() {
    let arena = Arena::new(|config| {
        strict(config);
        config.idle_timeout = Duration::from_secs(30);
        config.max_connections_per_client = Some(2);
    });
    let rt = runtime();
    let addr = arena.server.addr;
    let held = rt.block_on(async {
        let held = vec![connect(addr).await, connect(addr).await];
        for _ in 0..20 {
            let started = Instant::now();
            let mut conn = connect(addr).await;
            let _ = conn.send(compile(&arena)).await;
            assert_answer(
                &next_answer(&mut conn).await,
                Expect::Refused(
                    RefusalReason::Busy,
                    "2 connections (max_connections_per_client)",
                ),
            );
            assert!(started.elapsed() < QUICK);
        }
        held
    });
    {
        let _context = rt.enter();
        drop(held);
    }
    wait_for_lost(&arena.server, 2);
    arena.assert_unharmed();
}

/// A compile that writes 100 MB to stderr (100 static assertions with a 1 MB message each) is
/// killed at the server's bound (1 MiB here) and refused as `Limit`.
#[test]
fn compiler_output_flood_is_killed() {
    let source = b"#define S0 \"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\"
#define S1 S0 S0 S0 S0 S0 S0 S0 S0 S0 S0
#define S2 S1 S1 S1 S1 S1 S1 S1 S1 S1 S1
#define S3 S2 S2 S2 S2 S2 S2 S2 S2 S2 S2
#define S4 S3 S3 S3 S3 S3 S3 S3 S3 S3 S3
#define F static_assert(false, S4);
#define F10 F F F F F F F F F F
F10 F10 F10 F10 F10 F10 F10 F10 F10 F10
";
    let mut arena = Arena::new(strict);
    arena.write("flood.cpp", source);
    let conversation = arena.conversation_of(
        &[("flood.cpp", source)],
        &["-c", "flood.cpp", "-o", "flood.o"],
        Compression::Lzo,
    );
    let started = Instant::now();
    let answer = runtime().block_on(conversation.run(arena.server.addr));
    assert_answer(
        &answer,
        limit("more than 1048576 bytes to stderr and was killed (max_compiler_output)"),
    );
    assert!(
        started.elapsed() < QUICK,
        "refused after {:?}",
        started.elapsed()
    );
    arena.assert_unharmed();
}

/// A 600-byte macro bomb (2^30 tokens) makes the compiler allocate until its address space ends
/// at `max_compiler_memory` (256 MiB here; without a bound one took 5.5 GB): refused as a
/// `Limit` that names the bound, not returned as the compiler's verdict.
#[test]
fn a_macro_bomb_stops_at_the_compiler_memory_limit() {
    let arena = Arena::new(|config| {
        strict(config);
        config.compile_timeout = Duration::from_secs(60);
        config.max_compiler_memory = 256 << 20;
    });
    let mut bomb = String::from("#define X0 1,1\n");
    for i in 1..30 {
        bomb += &format!("#define X{i} X{p},X{p}\n", p = i - 1);
    }
    bomb += "int a[] = {X29};\n";
    let attack = arena.conversation_of(
        &[("a.cpp", bomb.as_bytes())],
        &["-c", "a.cpp"],
        Compression::None,
    );
    let answer = runtime().block_on(attack.run(arena.server.addr));
    assert_answer(&answer, limit("max_compiler_memory"));
    arena.assert_unharmed();
}

/// A compile that would run about 40 s is killed at the time limit and refused as `Timeout`.
#[test]
fn endless_compile_is_killed() {
    let mut source = String::from(
        "constexpr long spin(long n) { long x = 0; for (long i = 0; i < n; ++i) for (long j = 0; j < 1000; ++j) x += i ^ j; return x; }\n",
    );
    for k in 0..32 {
        source.push_str(&format!("constexpr long spun{k} = spin({});\n", 1500 + k));
    }
    let mut arena = Arena::new(strict);
    arena.write("stuck.cpp", source.as_bytes());
    let conversation = arena.conversation_of(
        &[("stuck.cpp", source.as_bytes())],
        &["-c", "stuck.cpp", "-o", "stuck.o"],
        Compression::Lzma,
    );
    let started = Instant::now();
    let answer = runtime().block_on(conversation.run(arena.server.addr));
    assert_answer(
        &answer,
        Expect::Refused(RefusalReason::Timeout, "time limit of 2 s"),
    );
    let took = started.elapsed();
    assert!(
        took >= COMPILE_TIMEOUT && took < COMPILE_TIMEOUT + QUICK,
        "refused after {took:?}"
    );
    arena.assert_unharmed();
}

/// A peer outside `allow` is closed before a byte is read, without a reply; a server that allows
/// loopback still works.
#[test]
fn peer_outside_the_allowed_networks_is_closed() {
    let arena = Arena::new(|config| {
        strict(config);
        config.allow = AllowedNetworks::new(vec!["192.0.2.0/24".parse().unwrap()]);
    });
    let started = Instant::now();
    let answer = runtime().block_on(arena.conversation(&["-c", "a.cpp"]).run(arena.server.addr));
    assert_answer(&answer, Expect::Closed);
    assert!(started.elapsed() < QUICK);
    arena.assert_nothing_escaped();
    assert_only_a_cache(&arena.server.cache_dir);
    assert_eq!(arena.server.records().len(), 0, "no session ran");
    let other = TestServer::fresh(strict);
    assert_normal_compile(&other);
}

/// A frame header above the limit is refused from the header alone: the server never reserves
/// the 4 GiB it announces. The process's peak virtual memory would grow by that much; other
/// tests' threads and allocator arenas may add some hundreds of MiB meanwhile.
#[test]
fn oversized_frame_is_not_allocated() {
    let arena = Arena::new(strict);
    let before = peak_virtual_memory();
    let answer = arena.answer(
        &Bytes(|_| [u32::MAX.to_be_bytes().as_slice(), &[0; 1024]].concat()),
        QUICK,
    );
    assert_answer(&answer, invalid("exceeds the limit of 1048576 bytes"));
    let grown = peak_virtual_memory().saturating_sub(before);
    assert!(grown < 2 << 30, "peak virtual memory grew by {grown} bytes");
    arena.assert_unharmed();
}

/// VmPeak of this process (which runs the server), in bytes.
fn peak_virtual_memory() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("VmPeak:"))
        .expect("VmPeak in /proc/self/status");
    let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().unwrap();
    kib << 10
}

// --- Weaknesses found by this suite, fixed in the server. ---

/// A client sending its request one byte every half idle timeout is cut off: the request must
/// arrive whole within the idle time.
#[test]
fn trickling_a_request_is_cut_off() {
    let arena = Arena::new(strict);
    let answer = runtime().block_on(async {
        let mut conn = connect(arena.server.addr).await;
        for byte in frame(&body(&compile(&arena))).into_iter().take(30) {
            if send_bytes(&mut conn, &[byte]).await.is_err() {
                break;
            }
            tokio::select! {
                answer = next_answer(&mut conn) => return answer,
                _ = tokio::time::sleep(IDLE / 2) => {}
            }
        }
        panic!("still connected after 30 bytes, one every {:?}", IDLE / 2);
    });
    assert_answer(&answer, Expect::Closed);
    arena.assert_unharmed();
}

/// Runs `args` against a fresh server with a manifest of `files` (each either the attacker's
/// source or a header shared with other compiles), then checks that every cached blob still
/// hashes to its name and that a normal compile still works.
fn assert_cannot_poison(args: &[&str], files: &[(&str, bool)]) {
    let arena = Arena::new(strict);
    let header: &[u8] = b"int shared_header_value = 7;\n";
    let evil: &[u8] =
        b"int shared_header_value = 666; int injected_by_attacker(void) { return 1; }\n";
    let files: Vec<(&str, &[u8])> = (files.iter())
        .map(|(name, shared)| (*name, if *shared { header } else { evil }))
        .collect();
    let attack = arena.conversation_of(&files, args, Compression::None);
    let _answer = runtime().block_on(attack.run(arena.server.addr));
    assert_only_a_cache(&arena.server.cache_dir);
    arena.assert_normal_compile();
}

/// `-S -o`, `-E -o` or `-MF` naming a manifest file that is not an output: the compiler may try
/// to write it, but never through the hard link into the cached blob other compiles share.
#[test]
fn an_output_over_a_manifest_file_cannot_poison_the_cache() {
    for args in [
        &["-S", "a.cpp", "-o", "h.h"][..],
        &["-E", "-P", "a.cpp", "-o", "h.h"],
        &["-c", "a.cpp", "-MD", "-MF", "h.h"],
        &["-S", "h.cpp"],
    ] {
        let files = [
            ("a.cpp", false),
            ("h.cpp", false),
            ("h.h", true),
            ("h.s", true),
        ];
        assert_cannot_poison(args, &files);
    }
}

/// A header compiled on its own (`-c a.h`, `-c x.hpp`) makes g++ write a precompiled header
/// beside it (`a.h.gch`, a name no flag gives), over a manifest file of that name: never into the
/// cached blob that file is a hard link of, whatever homccd's user (as root, the read-only mode
/// alone would not stop it).
#[test]
fn a_precompiled_header_over_a_manifest_file_cannot_poison_the_cache() {
    for (args, gch) in [
        (&["-c", "a.h"][..], "a.h.gch"),
        (&["-c", "x.hpp"], "x.hpp.gch"),
        (&["-c", "a.h", "-o", "h.h"], "a.h.gch"),
    ] {
        let files = [("a.h", false), ("x.hpp", false), (gch, true), ("h.h", true)];
        assert_cannot_poison(args, &files);
    }
}

/// The poisoning attacks above once more, against the homccd binary running as user nobody
/// (65534), where the blobs' read-only mode is what stops a compiler writing through a hard link:
/// afterwards every blob still hashes to its name, and a normal compile runs there.
#[test]
fn as_an_unprivileged_user_homccd_keeps_its_cache_whole() {
    const NOBODY: u32 = 65534;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    fs::create_dir(&cache).unwrap();
    std::os::unix::fs::chown(&cache, Some(NOBODY), Some(NOBODY)).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let daemon = Daemon::start_as(Some(NOBODY), &cache, &["--idle-timeout", "1"]);
    let header: &[u8] = b"int shared_header_value = 7;\n";
    let evil: &[u8] = b"int shared_header_value = 666;\n";
    let work = dir.path().join("work");
    let cases = [
        (&["-c", "a.h"][..], "a.h.gch"),
        (&["-c", "x.hpp"], "x.hpp.gch"),
        (&["-S", "a.cpp", "-o", "h.h"], "h.s"),
        (&["-c", "a.cpp", "-MD", "-MF", "h.h"], "h.s"),
    ];
    for (args, shared) in cases {
        let files: Vec<(PathBuf, Vec<u8>)> = [
            ("a.h", evil),
            ("x.hpp", evil),
            ("a.cpp", evil),
            (shared, header),
            ("h.h", header),
        ]
        .iter()
        .map(|(name, content)| (work.join(name), content.to_vec()))
        .collect();
        let attack = Conversation::new(gxx(), &work, args, &files, &[], Compression::None);
        let _answer = runtime().block_on(attack.run(daemon.addr));
    }
    assert_only_a_cache(&cache);
    let shared = cache
        .join("blobs-v1")
        .join(&Digest::of(header).to_hex()[..2]);
    assert!(
        names(&shared).contains(&Digest::of(header).to_hex()),
        "the shared header was cached: the attacks ran"
    );
    let owner = fs::metadata(cache.join("blobs-v1")).unwrap().uid();
    assert_eq!(owner, NOBODY, "the cache belongs to homccd's user");
    let project = Project::new();
    project.write(
        "v.c",
        "#include \"h.h\"\nint v(void) { return shared_header_value; }\n",
    );
    project.write("h.h", std::str::from_utf8(header).unwrap());
    let out = project
        .homcc_command(&["--host", &daemon.host()], "gcc", &["-c", "v.c"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        homcc_lines(&out.stderr),
        Vec::<String>::new(),
        "ran remotely"
    );
}

/// A client that uploads honestly and then never reads its result (a 64 MiB object, more than
/// the sockets buffer) holds it, and its job root, for no longer than the idle timeout; a normal
/// compile meanwhile is not held up.
#[test]
fn a_client_that_never_reads_its_result_is_dropped() {
    let arena = Arena::new(strict);
    let big: &[u8] = b"char big[64 << 20] = {1};\n";
    let attack = arena.conversation_of(
        &[("a.cpp", big)],
        &["-c", "a.cpp", "-o", "a.o"],
        Compression::None,
    );
    let rt = runtime();
    let _held = rt.block_on(async {
        let (mut conn, need) = attack.ask(arena.server.addr).await;
        attack.upload(&mut conn, &need).await.unwrap();
        conn
    });
    let started = Instant::now();
    arena.assert_normal_compile();
    let normal = started.elapsed();
    // Given up by homccd ("the client read nothing for N s"), or by the kernel first (what
    // homccd sends stays unacknowledged for as long: TCP_USER_TIMEOUT).
    wait_for("the unread result to be given up", QUICK, || {
        (arena.server.records().iter()).any(|r| r.outcome.contains("reply not sent"))
    });
    assert!(
        normal < QUICK,
        "a normal compile took {normal:?} during the attack"
    );
    assert_only_a_cache(&arena.server.cache_dir);
}

/// A manifest over `max_manifest_entries` is refused before any of it is cached: the refused
/// request leaves no chunk behind.
#[test]
fn a_refused_manifest_leaves_nothing_in_the_cache() {
    let arena = Arena::new(strict);
    let mut attack = arena.conversation(&["-c", "a.cpp", "-o", "a.o"]);
    add_headers(&mut attack, 10, 16);
    attack.seal();
    let answer = runtime().block_on(attack.run(arena.server.addr));
    assert_answer(&answer, limit("max_manifest_entries"));
    let blobs = arena.server.cache_dir.join("blobs-v1");
    let cached: Vec<String> = names(&blobs).into_iter().filter(|s| s != "tmp").collect();
    assert_eq!(
        cached,
        Vec::<String>::new(),
        "cached from a refused request"
    );
    arena.assert_unharmed();
}

/// A manifest of a million entries (a 40 MB request) is refused from its lists' lengths, before
/// an entry is decoded: the last entry's name is not UTF-8, which decoding would reach and call
/// the request malformed (it once took the server 5-6 s and about 1 GiB to refuse).
#[test]
fn a_huge_manifest_is_refused_before_its_entries_are_decoded() {
    let arena = Arena::new(|config| {
        strict(config);
        config.max_frame = 64 << 20;
        config.limits.manifest_entries = 200_000;
    });
    let mut attack = arena.conversation(&["-c", "a.cpp", "-o", "a.o"]);
    let files = (0..1_000_000)
        .map(|i| ChunkFile {
            name: match i {
                999_999 => "LAST-ENTRY".to_owned(),
                i => format!("f{i:07}.h"),
            },
            digest: Digest::of(b""),
            size: 0,
        })
        .collect();
    let chunk = Chunk {
        dir: attack.request.cwd.join("many").to_str().unwrap().to_owned(),
        files,
    };
    attack.request.manifest.push(ChunkRef {
        digest: chunk.digest(),
        inline: Some(chunk),
    });
    let mut bytes = body(&ClientMessage::Compile(Box::new(attack.request)));
    let last = bytes.windows(10).rposition(|w| w == b"LAST-ENTRY").unwrap();
    bytes[last] = 0xff;
    let answer = runtime().block_on(async {
        let mut conn = connect(arena.server.addr).await;
        send_bytes(&mut conn, &frame(&bytes)).await.unwrap();
        next_answer(&mut conn).await
    });
    assert_answer(&answer, limit("max_manifest_entries"));
    arena.assert_unharmed();
}

/// One cached file listed under a thousand names: one job makes one hard link to it (the rest
/// are copies), so no request can use up the links its inode may have (65,000 on ext4) while it
/// holds the connection, which would make every other compile of it fail.
#[test]
fn one_file_under_many_names_does_not_use_up_its_links() {
    let arena = Arena::new(|c| {
        strict(c);
        c.limits.manifest_entries = 2000;
    });
    let header: &[u8] = b"int shared_header_value = 7;\n";
    let warm = arena.conversation_of(&[("h.h", header)], &["-c", "a.cpp"], Compression::None);
    let _ = runtime().block_on(warm.run(arena.server.addr));
    let hex = Digest::of(header).to_hex();
    let blob = arena
        .server
        .cache_dir
        .join("blobs-v1")
        .join(&hex[..2])
        .join(&hex);
    assert!(blob.exists(), "the header is cached");
    let names: Vec<String> = (0..1000).map(|i| format!("h{i}.h")).collect();
    let mut files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), header)).collect();
    files.push(("b.cpp", b"int never_uploaded;\n"));
    let attack = arena.conversation_of(&files, &["-c", "b.cpp"], Compression::None);
    let links = runtime().block_on(async {
        let _asked = attack.ask(arena.server.addr).await;
        fs::metadata(&blob).unwrap().nlink()
    });
    // The cache's, the warm compile's (its root kept for this client's next compile, which the
    // attack's job took), and this job's one.
    assert!(links <= 1 + 1 + 1, "the cached file has {links} links");
    assert_only_a_cache(&arena.server.cache_dir);
    arena.assert_normal_compile();
}

/// A manifest file name is one path component (protocol.md §4).
#[test]
fn a_file_name_must_be_one_component() {
    let arena = Arena::new(strict);
    let mut attack = arena.conversation_of(
        &[("a.cpp", b"#include \"sub/h.h\"\n"), ("sub/other.h", b"")],
        &["-c", "a.cpp"],
        Compression::None,
    );
    let header: &[u8] = b"int from_sub = 1;\n";
    let digest = Digest::of(header);
    let work = arena.work().to_str().unwrap().to_owned();
    let chunk = attack
        .request
        .manifest
        .iter_mut()
        .filter_map(|r| r.inline.as_mut())
        .find(|c| c.dir == work)
        .unwrap();
    chunk.files.push(ChunkFile {
        name: "sub/h.h".into(),
        digest,
        size: header.len() as u64,
    });
    chunk.files.sort_by(|a, b| a.name.cmp(&b.name));
    attack.blobs.insert(
        digest,
        Blob {
            digest,
            payload: Payload::pack(Compression::None, header),
        },
    );
    attack.seal();
    let answer = runtime().block_on(attack.run(arena.server.addr));
    assert_answer(&answer, invalid("sub/h.h"));
    arena.assert_unharmed();
}

/// Directories are bounded (60 paths 2000 levels deep once took the server 17 s to create).
#[test]
fn many_dirs_are_refused_at_once() {
    let arena = Arena::new(strict);
    let mut attack = arena.conversation(&["-c", "a.cpp", "-o", "a.o"]);
    let deep = "/d".repeat(2000);
    attack.request.dirs = (0..60)
        .map(|i| PathBuf::from(format!("/x{i}{deep}")))
        .collect();
    let started = Instant::now();
    let answer = runtime().block_on(attack.run(arena.server.addr));
    assert!(
        started.elapsed() < QUICK,
        "answered after {:?}",
        started.elapsed()
    );
    assert_answer(&answer, limit("dirs"));
    arena.assert_unharmed();
}

/// Directories of chunks the server asks for are bounded like the request's own: 60 empty
/// chunks 2000 levels deep once took the server about 17 s, and a chunk path may have at most
/// 256 components (`MAX_PATH_COMPONENTS`), and all directories together 20,000 (120 chunks 200
/// deep are a `Limit`).
#[test]
fn deep_or_many_chunk_directories_are_refused_at_once() {
    let arena = Arena::new(|config| {
        strict(config);
        config.limits.manifest_entries = 200;
    });
    let cases = [
        (60, 2000, invalid("256 components")),
        (120, 200, limit("dirs")),
    ];
    for (count, depth, expect) in cases {
        let mut attack = arena.conversation(&["-c", "a.cpp", "-o", "a.o"]);
        for i in 0..count {
            attack.list_chunk_by_digest(Chunk {
                dir: format!("/x{i}{}", "/d".repeat(depth)),
                files: Vec::new(),
            });
        }
        let started = Instant::now();
        let answer = runtime().block_on(attack.run(arena.server.addr));
        assert!(
            started.elapsed() < QUICK,
            "{count} chunks {depth} deep: answered after {:?}",
            started.elapsed()
        );
        assert_answer(&answer, expect);
    }
    arena.assert_unharmed();
}

/// A client that claims the upload of a file and then trickles its `Blob` frame does not stall
/// other compiles that need the same content: after half the idle timeout they ask their own
/// client for it (`fill.rs`, `await_other_jobs`).
#[test]
fn a_trickled_upload_does_not_stall_other_clients() {
    let arena = Arena::new(strict);
    let header: &[u8] = b"int shared_header_value = 7;\n";
    let attack = arena.conversation_of(
        &[("a.cpp", SOURCE), ("h.h", header)],
        &["-c", "a.cpp"],
        Compression::None,
    );
    let trickler = Trickler::start(arena.server.addr, attack, Digest::of(header), IDLE / 2);
    let victim = Project::new();
    victim.write("h.h", std::str::from_utf8(header).unwrap());
    victim.write(
        "v.c",
        "#include \"h.h\"\nint get(void) { return shared_header_value; }\n",
    );
    let started = Instant::now();
    let out = victim
        .homcc_command(&["--host", &arena.server.host()], "gcc", &["-c", "v.c"])
        .env("HOMCC_COMPILATION_REQUEST_TIMEOUT", "15")
        .output()
        .unwrap();
    trickler.stop();
    assert_eq!(
        homcc_lines(&out.stderr),
        Vec::<String>::new(),
        "after {:?}",
        started.elapsed()
    );
}

/// A source cannot read the server's files: an absolute or `..`-climbing `#include`, or
/// `.incbin` in the assembler, fail inside the sandbox (Landlock), and nothing of the file comes
/// back, neither on stdout nor in the object.
#[test]
fn a_source_cannot_read_server_files() {
    let arena = Arena::new(strict);
    let secret = arena.dir.path().join("secret.txt");
    fs::write(&secret, "server secret 4f1c2b\n").unwrap();
    let cases = [
        (format!("#include \"{}\"\n", secret.display()), "-E"),
        (arena.expand("#include \"UP_CANARY/../secret.txt\"\n"), "-E"),
        (
            format!("asm(\".incbin \\\"{}\\\"\");\n", secret.display()),
            "-c",
        ),
    ];
    for (source, mode) in cases {
        let attack = arena.conversation_of(
            &[("a.cpp", source.as_bytes())],
            &[mode, "a.cpp"],
            Compression::None,
        );
        match runtime().block_on(attack.run(arena.server.addr)) {
            Answer::Result(r) => {
                assert_ne!(r.exit_code, 0, "{source}: compiled");
                let everything = [&r.stdout[..], &r.stderr]
                    .into_iter()
                    .chain(r.outputs.iter().map(|o| &o.payload.data[..]))
                    .map(String::from_utf8_lossy)
                    .collect::<String>();
                assert!(!everything.contains("4f1c2b"), "{source}: leaked");
            }
            other => panic!("{source}: expected the compiler's verdict, got {other:?}"),
        }
    }
    arena.assert_normal_compile();
}
