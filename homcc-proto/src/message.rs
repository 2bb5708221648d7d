//! The messages of one compile. A connection carries exactly one compile:
//! `ClientMessage::Compile`, then the server's `Need`, then the client's `Chunks`/`Blob` frames,
//! then the server's `Queued` (when the compile waits for a slot) and `Heartbeat`s and finally
//! its `Result`, or a `Refused` at any point before.
//! A server with a token opens with `Challenge`, which the client answers with `Auth` first.

use std::{ffi::OsString, fmt, path::PathBuf};

use serde::{Deserialize, Serialize};

use crate::{manifest::Chunk, Compression, CompressionError, Digest};

/// Frames sent by homcc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// The first frame of every connection (boxed: it is much larger than the other frames;
    /// the encoding is the request's own).
    Compile(Box<CompileRequest>),
    /// Manifest chunks the server asked for in `Need::chunks`.
    Chunks(#[serde(deserialize_with = "crate::codec::counted_dirs")] Vec<Chunk>),
    /// One file's content, asked for in `Need::blobs`.
    Blob(Blob),
    /// The answer to the server's `Challenge`, sent before `Compile`:
    /// [`AuthToken::proof`](crate::AuthToken::proof) of its nonce.
    Auth { proof: [u8; 32] },
    /// Nothing to do: sent over SSH after an empty `Need`, which the client has no other answer
    /// to, so that the SSH connection carries the server's next frame at once instead of holding
    /// it until the client's kernel acknowledges the `Need` (up to 40 ms; docs/protocol.md §4).
    /// The server reads and drops it.
    Ready,
}

/// Frames sent by homccd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMessage {
    /// The compile will not run here; the connection ends after this frame.
    Refused(Refusal),
    /// What the server's cache lacks. Always sent once after `Compile` (possibly empty), and again
    /// only if chunks sent after the first `Need` list files the cache lacks.
    Need(Need),
    /// The compile is still running (sent every few seconds).
    Heartbeat,
    /// The compiler's verdict; the connection ends after this frame.
    Result(CompileResult),
    /// Sent at once by a server that has a token, before it reads anything: the client answers
    /// with `Auth` before its `Compile`.
    Challenge { nonce: [u8; 32] },
    /// Every file is there but every compile slot is taken: the compile waits in the server's
    /// queue, `position` (1: next) among the compiles waiting, with heartbeats, until a slot
    /// frees. Sent at most once, after the uploads.
    Queued { position: u32 },
}

/// Everything the server needs to run one compile, except file contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompileRequest {
    /// [`crate::PROTOCOL_VERSION`] of the client. Must stay the first field.
    pub version: u32,
    pub compiler: CompilerIdentity,
    /// The compiler's arguments as the user gave them (after the compiler name).
    pub args: Vec<OsString>,
    /// The client's working directory (absolute).
    pub cwd: PathBuf,
    /// The compiler's built-in include search list, in order, spelt as the compiler prints it
    /// (`-E -v`), e.g. `/usr/lib/gcc/x86_64-linux-gnu/12/../../../../include/c++/12`.
    pub include_dirs: Vec<PathBuf>,
    /// Files the compiler includes before the source on its own (gcc's `stdc-predef.h`), which
    /// `-nostdinc` turns off: the server includes them explicitly, first.
    pub implicit_includes: Vec<PathBuf>,
    /// The source is already preprocessed (`.i`, `.ii`): the server adds no include search,
    /// implicit include or macro flags (the compiler would only warn that they are unused).
    pub preprocessed: bool,
    /// Absolute, normal client directories that the compile's include flags (`-I`, `-iquote`,
    /// `-isystem`, `-idirafter`) name and that exist on the client: the server creates them, so
    /// that the compiler finds the same directories present (gcc's `-Wmissing-include-dirs`).
    #[serde(deserialize_with = "crate::codec::counted_dirs")]
    pub dirs: Vec<PathBuf>,
    /// Every file the compile reads, grouped into chunks (one per directory).
    #[serde(deserialize_with = "crate::codec::counted_dirs")]
    pub manifest: Vec<ChunkRef>,
    /// Absolute client paths of the files the compile writes (object, split DWARF); the server
    /// sends back those that exist.
    pub outputs: Vec<PathBuf>,
    /// The client's variables that change what the compiler prints or writes (locale,
    /// `SOURCE_DATE_EPOCH`); the server keeps only names in [`FORWARDED_ENV`].
    pub env: Vec<(String, String)>,
    /// How the server compresses the output files.
    pub compression: Compression,
    /// Whether the compile may wait in the server's queue when every compile slot is taken:
    /// `false` asks for `Busy` at once instead (the client has another host to try first).
    pub queue: bool,
    /// The absolute client path of the dependency file that `args` write (`-MD`/`-MMD` with
    /// `-MF` there), when the client did not write it itself: the server sends it back among
    /// the outputs if it names no path inside the job root (otherwise the client writes it).
    pub depfile: Option<PathBuf>,
    /// The server environment the client asks to compile in (`HOMCC_SCHROOT_PROFILE`,
    /// `HOMCC_DOCKER_CONTAINER`); `None`: the server's own compilers, or any environment it
    /// offers whose compiler has exactly the client's identity.
    pub environment: Option<Environment>,
    /// Compile even if the server has the result recorded (`HOMCC_NO_RESULT_CACHE`), and record
    /// nothing.
    pub no_result_cache: bool,
}

/// A compile environment of a server: one of the schroot profiles or docker containers its
/// administrator offers (docs/configuration.md). A client names one; only the server's list
/// decides whether it runs there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Environment {
    /// A schroot profile (chroot), by its name in `schroot -l`.
    Schroot(String),
    /// A running docker container, by its name.
    Docker(String),
}

impl Environment {
    /// The profile's or container's name.
    pub fn name(&self) -> &str {
        match self {
            Environment::Schroot(name) | Environment::Docker(name) => name,
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = crate::text::shown(self.name(), 200);
        match self {
            Environment::Schroot(_) => write!(f, "schroot profile '{name}'"),
            Environment::Docker(_) => write!(f, "docker container '{name}'"),
        }
    }
}

/// Environment variables that travel with a request: the locale decides the language and the
/// quote characters of diagnostics, `SOURCE_DATE_EPOCH` the value of `__DATE__` and `__TIME__`.
pub const FORWARDED_ENV: &[&str] = &[
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "SOURCE_DATE_EPOCH",
];

/// Which compiler the client would have run. The server runs a compiler only if all four match.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CompilerIdentity {
    /// The file name the user invoked (`g++`, `clang-14`, `x86_64-linux-gnu-gcc-12`).
    pub name: String,
    /// The version number (`12.2.0`, `14.0.6`).
    pub version: String,
    /// The full version line the compiler prints with `-v` (`gcc version 12.2.0 (Debian 12.2.0-14)`),
    /// so that two builds of one version from different vendors do not pass for each other.
    pub build: String,
    /// The target triple (`x86_64-linux-gnu`).
    pub target: String,
}

impl CompilerIdentity {
    /// Reads the version and target from what `cc -v` prints on stderr, e.g. gcc's
    /// `Target: x86_64-linux-gnu` / `gcc version 12.2.0 (Debian 12.2.0-14)` or clang's
    /// `Debian clang version 14.0.6` / `Target: x86_64-pc-linux-gnu`.
    pub fn from_verbose_output(name: &str, text: &str) -> Option<Self> {
        let target = text
            .lines()
            .find_map(|l| l.strip_prefix("Target: "))?
            .trim();
        let build = text
            .lines()
            .find(|l| l.contains(" version ") && !l.starts_with(' '))?
            .trim();
        let version = build
            .split_whitespace()
            .skip_while(|w| *w != "version")
            .nth(1)?;
        Some(CompilerIdentity {
            name: name.to_owned(),
            version: version.to_owned(),
            build: build.to_owned(),
            target: target.to_owned(),
        })
    }

    /// Adds the version line of the assembler the compiler runs (gcc runs binutils' `as`; clang
    /// assembles itself), so that a server with other binutils does not pass for the same
    /// compiler: the assembler writes the object file's bytes.
    pub fn with_assembler(mut self, version_line: &str) -> Self {
        self.build = format!("{}; {}", self.build, version_line.trim());
        self
    }

    /// Whether this is clang (rather than gcc), from its version line.
    pub fn is_clang(&self) -> bool {
        self.build.contains("clang")
    }
}

impl fmt::Display for CompilerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.name, self.version, self.target)
    }
}

/// A manifest chunk, named by the digest of its encoding; the chunk itself travels only when the
/// client does not know that the server has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub digest: Digest,
    pub inline: Option<Chunk>,
}

/// The server's answer to a manifest: what to upload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Need {
    /// Chunks referenced by digest that the server does not have: send them in one `Chunks` frame.
    pub chunks: Vec<Digest>,
    /// Files the server does not have: send each in a `Blob` frame, in any order.
    pub blobs: Vec<Digest>,
}

impl Need {
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.blobs.is_empty()
    }
}

/// One file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blob {
    /// blake3 of the uncompressed content; the server recomputes it.
    pub digest: Digest,
    pub payload: Payload,
}

/// Bytes compressed on their own, with their uncompressed size.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub compression: Compression,
    pub size: u64,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

impl Payload {
    /// Compresses `bytes` with `compression` (stored as-is when that does not shrink them).
    pub fn pack(compression: Compression, bytes: &[u8]) -> Self {
        let (compression, data) = compression.compress(bytes);
        Payload {
            compression,
            size: bytes.len() as u64,
            data,
        }
    }

    /// The original bytes, if they are at most `max` long.
    pub fn unpack(&self, max: u64) -> Result<Vec<u8>, CompressionError> {
        self.compression.decompress(&self.data, self.size, max)
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Payload({}, {} -> {} bytes)",
            self.compression,
            self.size,
            self.data.len()
        )
    }
}

/// Why the server will not compile this request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub reason: RefusalReason,
    /// One line for the user, e.g. `compiler g++ 13.2.0 (x86_64-linux-gnu) not available there`.
    pub detail: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

/// The typed part of a refusal, for a client to decide what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefusalReason {
    /// The server is full (every compile slot taken, and with `CompileRequest::queue` every
    /// place of its queue too, or the client address has all the connections it may have):
    /// load, not a failure; try another host or ask again later.
    Busy,
    /// The client speaks another protocol version; `server` is the one the server speaks.
    Version { server: u32 },
    /// The server has no compiler with this name, version and target.
    CompilerMismatch,
    /// The request breaks a rule (bad path, frame out of order, blob that does not match, ...).
    InvalidRequest,
    /// The server is shutting down.
    ShuttingDown,
    /// The compile ran past the server's time limit and was killed.
    Timeout,
    /// The server failed on its side (disk full, ...).
    Internal,
    /// The server's argument policy refuses one of the compiler arguments (a flag that runs or
    /// loads code, reads or writes outside the job root, links, or that the server does not know);
    /// the detail names it and why. Not the host's fault: the client compiles locally.
    Forbidden,
    /// The compile passed one of the server's size limits (compiler output, uploads, manifest,
    /// outputs); the detail names it. Not the host's fault: the client compiles locally.
    Limit,
    /// The server has a token and the client did not prove it has the same one (no `Auth`
    /// frame, or a wrong proof).
    AuthFailed,
    /// The environment the request names is not one the server offers, or it cannot run a
    /// compile now (a stopped container); the detail names it and the ones offered. Not the
    /// host's fault: the client tries another host or compiles locally.
    Environment,
    /// The server's disk (its cache and job roots) has no room for this compile: it evicts
    /// cached files to make some, but the client compiles elsewhere this time.
    DiskFull,
}

/// The compiler's verdict, with client paths everywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompileResult {
    pub exit_code: i32,
    #[serde(with = "serde_bytes")]
    pub stdout: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub stderr: Vec<u8>,
    /// The requested outputs that the compiler wrote.
    pub outputs: Vec<OutputFile>,
    /// The environment the compiler ran in; `None`: the server itself.
    pub environment: Option<Environment>,
    /// Answered from the server's result cache: the server compiled this exact compile before.
    pub cached: bool,
}

/// One file the compiler wrote, at its client path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFile {
    pub path: PathBuf,
    pub payload: Payload,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Option<(&str, &str, &str)>) {
        let got = CompilerIdentity::from_verbose_output("cc", text);
        let got = got
            .as_ref()
            .map(|i| (i.version.as_str(), i.build.as_str(), i.target.as_str()));
        assert_eq!(got, expected, "{text}");
    }

    #[test]
    fn reads_compiler_identity() {
        let gcc = "Using built-in specs.\nCOLLECT_GCC=gcc\nTarget: x86_64-linux-gnu\nConfigured with: ../src/configure -v --with-pkgversion='Debian 12.2.0-14'\nThread model: posix\ngcc version 12.2.0 (Debian 12.2.0-14) \n";
        check(
            gcc,
            Some((
                "12.2.0",
                "gcc version 12.2.0 (Debian 12.2.0-14)",
                "x86_64-linux-gnu",
            )),
        );
        let clang = "Debian clang version 14.0.6\nTarget: x86_64-pc-linux-gnu\nThread model: posix\nInstalledDir: /usr/bin\n";
        check(
            clang,
            Some((
                "14.0.6",
                "Debian clang version 14.0.6",
                "x86_64-pc-linux-gnu",
            )),
        );
        check("Target: x86_64-linux-gnu\n", None);
        check("gcc version 12\n", None);
        check("", None);
    }
}
