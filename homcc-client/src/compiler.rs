//! The local compiler: where it is, what it is (name, version, target) and its built-in include
//! search list, probed once with `-E -v` and cached on disk per binary and target flags.

use std::{
    ffi::{OsStr, OsString},
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, Context};
use homcc_proto::{
    codec::{decode_record, encode_record},
    flags::{self, Token},
    identity,
    sys::is_executable,
    CompilerIdentity, Digest,
};
use serde::{Deserialize, Serialize};

use crate::{classify::Language, scan::searchlist};

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompilerInfo {
    pub identity: CompilerIdentity,
    /// The `#include <...>` search list, spelt as printed.
    pub include_dirs: Vec<PathBuf>,
    /// Files the compiler includes before any source on its own (gcc: `stdc-predef.h`).
    pub implicit_includes: Vec<PathBuf>,
    /// Built-in include dirs left out because they do not exist: one created later changes the
    /// search list, so a cached probe is used only while each is still missing.
    pub missing_dirs: Vec<PathBuf>,
    /// The program that preprocesses and compiles (gcc's `cc1`, `cc1plus`; clang itself), as
    /// the driver runs it: the scan cache's key stamps it besides the driver.
    pub proper: Option<PathBuf>,
}

/// Part of every probe record's key: a new homcc release, or a new way of probing, never reads
/// records an older one wrote.
const PROBE_FORMAT: &str = concat!(env!("CARGO_PKG_VERSION"), "/probe-3");

/// Why the compiler to run cannot be found.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("compiler '{0}' not found on PATH: install it, or name it by its path")]
    NotFound(String),
    #[error(
        "'{0}' is homcc itself, not a compiler: name the real compiler after homcc \
         (homcc g++ ...), or keep the real compilers on PATH after homcc's compiler symlinks"
    )]
    IsHomcc(PathBuf),
}

/// Finds `compiler` as the shell would (a path as given, a bare name on `PATH`), except that a
/// candidate that is homcc itself (a symlink named `g++` pointing at homcc, used to masquerade
/// as the compiler) is skipped: homcc never runs itself.
pub fn resolve(compiler: &OsStr) -> Result<PathBuf, ResolveError> {
    let me = std::env::current_exe().and_then(|p| p.canonicalize()).ok();
    let is_me = |p: &Path| me.is_some() && p.canonicalize().ok() == me;
    let path = Path::new(compiler);
    if compiler.as_bytes().contains(&b'/') {
        return if is_me(path) {
            Err(ResolveError::IsHomcc(path.to_owned()))
        } else {
            Ok(path.to_owned())
        };
    }
    let search = std::env::var_os("PATH").unwrap_or_default();
    let mut skipped = None;
    for candidate in std::env::split_paths(&search)
        .map(|dir| dir.join(path))
        .filter(|p| is_executable(p))
    {
        if is_me(&candidate) {
            skipped = Some(candidate);
        } else {
            return Ok(candidate);
        }
    }
    Err(match skipped {
        Some(me) => ResolveError::IsHomcc(me),
        None => ResolveError::NotFound(path.display().to_string()),
    })
}

/// The compiler's identity and include dirs for `language` and `target_args`, from the on-disk
/// cache in `cache_dir` when the binary is unchanged, else probed and stored.
pub fn info(
    invoked: &OsStr,
    binary: &Path,
    language: Language,
    target_args: &[OsString],
    cache_dir: Option<&Path>,
) -> anyhow::Result<CompilerInfo> {
    let meta = binary
        .metadata()
        .with_context(|| format!("cannot stat {}", binary.display()))?;
    let name = Path::new(invoked)
        .file_name()
        .unwrap_or(invoked)
        .to_string_lossy()
        .into_owned();
    let mut key = Vec::new();
    for part in [
        PROBE_FORMAT.as_bytes(),
        binary.as_os_str().as_bytes(),
        name.as_bytes(),
        language.name().as_bytes(),
    ] {
        key.extend_from_slice(part);
        key.push(0);
    }
    key.extend_from_slice(&meta.size().to_le_bytes());
    key.extend_from_slice(&meta.mtime().to_le_bytes());
    key.extend_from_slice(&meta.mtime_nsec().to_le_bytes());
    for arg in target_args {
        key.extend_from_slice(arg.as_bytes());
        key.push(0);
    }
    if names_relative_path(target_args) {
        // The compiler prints a relative sysroot's dirs made absolute from where it runs.
        let cwd = std::env::current_dir().context("no working directory")?;
        key.extend_from_slice(cwd.as_os_str().as_bytes());
    }
    let file = cache_dir.map(|d| d.join("compilers").join(Digest::of(&key).to_hex()));
    if let Some(info) = file
        .as_ref()
        .and_then(|f| std::fs::read(f).ok())
        .and_then(|b| decode_record::<CompilerInfo>(&b).ok())
        .filter(|info| !info.missing_dirs.iter().any(|d| d.is_dir()))
    {
        return Ok(info);
    }
    let info = probe(&name, binary, language, target_args)?;
    if let Some(file) = file {
        // A cache that cannot be written only costs a probe next time.
        let _ = store(&file, &encode_record(&info)?);
    }
    Ok(info)
}

/// Whether a target flag names a relative path (`--sysroot=dir`, `-isysroot dir`).
fn names_relative_path(target_args: &[OsString]) -> bool {
    flags::tokens(target_args).any(|token| match token {
        Token::Flag(flag) => flag.path().is_some_and(|p| !p.as_bytes().starts_with(b"/")),
        _ => false,
    })
}

fn store(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = file.parent().expect("cache files live in a directory");
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(tmp.path(), bytes)?;
    tmp.persist(file).map_err(|e| e.error)?;
    Ok(())
}

/// Runs `cc <target args> -E -v -M -x <lang> /dev/null` in the C locale: stderr has the version,
/// target and search list; stdout the dependencies of an empty source, i.e. the implicit includes.
fn probe(
    name: &str,
    binary: &Path,
    language: Language,
    target_args: &[OsString],
) -> anyhow::Result<CompilerInfo> {
    let mut cmd = Command::new(binary);
    for var in crate::classify::environment::INCLUDE_PATHS {
        cmd.env_remove(var);
    }
    let out = cmd
        .args(target_args)
        .args(["-E", "-v", "-M", "-x", language.name(), "/dev/null"])
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!(
            "{} -E -v failed: {}",
            binary.display(),
            text.lines().last().unwrap_or("")
        );
    }
    let identity = identity::identify(name, binary.as_os_str(), &text, identity::run_first_line)
        .with_context(|| format!("{}", binary.display()))?;
    // Preprocessed languages list no dependencies at all.
    let listed = !out.stdout.iter().all(u8::is_ascii_whitespace);
    let implicit_includes = if listed {
        crate::depfile::parse_dependencies(&out.stdout)
            .with_context(|| format!("cannot read the implicit includes of {}", binary.display()))?
            .into_iter()
            .filter(|p| p != Path::new("/dev/null"))
            .collect()
    } else {
        Vec::new()
    };
    let search = searchlist::parse(&out.stderr);
    Ok(CompilerInfo {
        identity,
        include_dirs: search.bracket,
        implicit_includes,
        missing_dirs: search.missing,
        proper: compiler_proper(&out.stderr),
    })
}

/// The program the driver ran to preprocess, from its `-v` lines: gcc's ` /path/cc1 -E ...`,
/// clang's ` "/path/clang" -cc1 ...`.
fn compiler_proper(text: &[u8]) -> Option<PathBuf> {
    text.split(|&b| b == b'\n').find_map(|line| {
        let mut words = line.strip_prefix(b" ")?.split(|&b| b == b' ');
        let program = words.next()?;
        let program = (program
            .strip_prefix(b"\"")
            .and_then(|p| p.strip_suffix(b"\"")))
        .unwrap_or(program);
        let path = PathBuf::from(OsStr::from_bytes(program));
        let cc1 = path.file_name()?.as_bytes().starts_with(b"cc1");
        (cc1 || words.next() == Some(b"-cc1")).then_some(path)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_compiler_proper() {
        let gcc = b"COLLECT_GCC_OPTIONS='-v'\n /usr/lib/gcc/x86_64-linux-gnu/12/cc1 -E -quiet -v\n";
        let clang = b"Thread model: posix\n \"/usr/lib/llvm-14/bin/clang\" -cc1 -triple x\n";
        let list = b"#include <...> search starts here:\n /usr/include\n";
        assert_eq!(
            compiler_proper(gcc),
            Some(PathBuf::from("/usr/lib/gcc/x86_64-linux-gnu/12/cc1"))
        );
        assert_eq!(
            compiler_proper(clang),
            Some(PathBuf::from("/usr/lib/llvm-14/bin/clang"))
        );
        assert_eq!(compiler_proper(list), None);
    }

    #[test]
    fn relative_sysroots_depend_on_the_working_directory() {
        let check = |line: &str, want: bool| {
            let args: Vec<OsString> = line.split_whitespace().map(OsString::from).collect();
            assert_eq!(names_relative_path(&args), want, "{line}");
        };
        check("--sysroot=sys", true);
        check("--sysroot sys", true);
        check("-isysroot sys", true);
        check("-isysrootsys", true);
        check("--sysroot=/sys -m64", false);
        check("-isysroot /sys", false);
        check("-m64 --target=x86_64-linux-gnu", false);
        check("", false);
    }

    #[test]
    fn probes_the_real_gcc() {
        let gcc = resolve(OsStr::new("gcc")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let first = info(
            OsStr::new("gcc"),
            &gcc,
            Language::Cxx,
            &[],
            Some(dir.path()),
        )
        .unwrap();
        assert!(first.identity.target.contains("linux"), "{first:?}");
        assert!(
            first.identity.build.contains("; GNU assembler"),
            "{first:?}"
        );
        assert!(
            first
                .include_dirs
                .iter()
                .any(|d| d.to_string_lossy().contains("c++")),
            "{first:?}"
        );
        let cached = info(
            OsStr::new("gcc"),
            &gcc,
            Language::Cxx,
            &[],
            Some(dir.path()),
        )
        .unwrap();
        assert_eq!(first, cached);
        assert_eq!(
            std::fs::read_dir(dir.path().join("compilers"))
                .unwrap()
                .count(),
            1
        );
        let c = info(OsStr::new("gcc"), &gcc, Language::C, &[], Some(dir.path())).unwrap();
        assert!(
            !c.include_dirs
                .iter()
                .any(|d| d.to_string_lossy().contains("c++")),
            "{c:?}"
        );
        assert_eq!(
            c.implicit_includes,
            [PathBuf::from("/usr/include/stdc-predef.h")]
        );
        let free = info(
            OsStr::new("gcc"),
            &gcc,
            Language::C,
            &["-ffreestanding".into()],
            Some(dir.path()),
        )
        .unwrap();
        assert!(free.implicit_includes.is_empty(), "{free:?}");
    }
}
