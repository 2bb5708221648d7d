//! Classifies a compiler command line: remote jobs (one per source, with outputs and the
//! arguments of its dependency scan), a compile+link whose link runs locally, or a local run
//! with the reason why.
//!
//! Two pure passes: `read` takes each argument by its entry in the flag table (`flags`: how its
//! value is attached, what it means for homcc) into a flat `Command`; `plan` makes the jobs from
//! it. Then the outputs are checked against this machine's file system, and every job against
//! homcc-proto's argument policy.

use std::{
    ffi::{OsStr, OsString},
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use homcc_proto::policy;

use crate::paths::absolute;

pub mod environment;
pub mod flags;
mod language;
mod plan;
mod read;

pub use language::Language;
pub use plan::{link_args, Depfile, LinkArg, Plan, RemoteJob};
use read::{read, Command};

/// Extensions of the languages other than C and C++ that the compiler driver compiles or
/// assembles itself; any other input of a link is for the linker.
const OTHER_LANGUAGES: &[&str] = &[
    "mi", "mii", "h", "hh", "H", "hp", "hxx", "hpp", "HPP", "h++", "tcc", "s", "f", "for", "ftn",
    "F", "FOR", "fpp", "FPP", "FTN", "f90", "f95", "f03", "f08", "F90", "F95", "F03", "F08", "go",
    "d", "di", "dd", "ads", "adb", "cu", "cl",
];

fn local(reason: impl Into<String>) -> Plan {
    Plan::Local(reason.into())
}

/// One argument (with its value) of the command, by what each job's commands do with it.
#[derive(Debug, Clone)]
enum Part {
    /// A source file: index into the sources.
    Source(usize),
    /// `-o FILE`: the compile's output (only with a single source).
    Output(Vec<OsString>),
    /// `-c`, `-S`: for the compile, not the scan.
    Stop(Vec<OsString>),
    /// `-x LANG`: applies to the sources after it, so a job keeps only those before its source.
    Language(Vec<OsString>),
    /// Dependency-file flags: the client's scan writes that file.
    Dependency,
    /// An input that is not a source (an object, a library): only for a link.
    LinkInput(OsString),
    /// Everything else: the scan (if `scan`), the compile and the link.
    Common { args: Vec<OsString>, scan: bool },
}

/// Which compiler driver runs the command, as far as its meaning depends on it: a C++ driver
/// (`g++`, `c++`, `clang++-14`) compiles `.c` files as C++; clang's driver reads `-Wp,-MD,file`
/// as `-MD -MF file` (targeting the object), gcc passes it to the preprocessor as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Driver {
    pub cxx: bool,
    pub clang: bool,
}

impl Driver {
    /// From the compiler's file name: `++` in it means a C++ driver, `clang` a clang one.
    pub fn from_name(name: &OsStr) -> Driver {
        let file = Path::new(name).file_name().unwrap_or(name).as_bytes();
        let has = |part: &[u8]| file.windows(part.len()).any(|w| w == part);
        Driver {
            cxx: has(b"++"),
            clang: has(b"clang"),
        }
    }
}

/// Classifies `args` (the compiler's arguments) run by `driver` in `cwd`.
pub fn classify(args: &[OsString], cwd: &Path, driver: Driver) -> Plan {
    let plan = walk(args, cwd, driver);
    let jobs = match &plan {
        Plan::Remote(jobs) | Plan::CompileAndLink { jobs, .. } => jobs,
        Plan::Local(_) => return plan,
    };
    // Every homccd applies homcc-proto's argument policy: what it would refuse runs here, and
    // no host is asked.
    match jobs
        .iter()
        .find_map(|j| policy::check(&j.compile_args).err())
    {
        Some(refused) => local(refused.to_string()),
        None => plan,
    }
}

/// Everything but the argument policy: the command read against the flag table, the jobs it
/// makes, and whether this machine can write their outputs where the compiler would.
fn walk(args: &[OsString], cwd: &Path, driver: Driver) -> Plan {
    let command = match read(args, cwd, driver) {
        Ok(command) => command,
        Err(reason) => return Plan::Local(reason),
    };
    let plan = plan(command, cwd);
    if let Plan::Remote(jobs) = &plan {
        let written = jobs
            .iter()
            .flat_map(|j| j.outputs.iter().chain(j.depfile.as_ref().map(|d| &d.path)));
        if let Some(reason) = written.map(|p| unwritable(p)).find_map(|r| r) {
            return local(reason);
        }
    }
    plan
}

/// The second pass: the jobs of a command (one per source) and, for a compile+link, the link;
/// or why it runs locally. Pure.
fn plan(command: Command, cwd: &Path) -> Plan {
    let c = &command;
    if !c.compile_only && !c.assembly_only {
        return match why_link_is_local(c) {
            Some(reason) => local(reason),
            None => compile_and_link(&c.parts, &c.sources, &c.target_args, &c.include_flag_dirs),
        };
    }
    if let Some(reason) = why_compile_is_local(c) {
        return local(reason);
    }
    Plan::Remote(
        (0..c.sources.len())
            .map(|i| remote_job(c, i, cwd))
            .collect(),
    )
}

/// Why a command that links (no `-c`, `-S`) runs locally, if it does.
fn why_link_is_local(c: &Command) -> Option<String> {
    if c.sources.is_empty() {
        return Some("linking only: runs locally".into());
    }
    if let Some(path) = &c.other_language {
        return Some(format!("input {} is compiled locally", path.display()));
    }
    (c.dep_while_compiling || c.split_dwarf).then(|| {
        "dependency files and split DWARF of a compile+link command are written locally".into()
    })
}

/// Why a command that stops before linking runs locally, if it does.
fn why_compile_is_local(c: &Command) -> Option<String> {
    if let Some(path) = &c.not_source {
        return Some(format!("input {} is not a C or C++ source", path.display()));
    }
    let reason = if c.sources.is_empty() {
        "no source file"
    } else if c.dep_while_compiling && c.sources.iter().any(|(_, l)| l.is_preprocessed()) {
        "a dependency file of a preprocessed source"
    } else if c.sources.len() > 1 && (c.output_arg.is_some() || c.dep_file.is_some()) {
        "-o or -MF with several sources: the compiler reports it"
    } else if c.output_arg.as_ref().is_some_and(|o| o.as_bytes() == b"-") {
        "writes the object to standard output (-o -)"
    } else {
        return None;
    };
    Some(reason.into())
}

/// The job of source `index` of a command that stops before linking.
fn remote_job(c: &Command, index: usize, cwd: &Path) -> RemoteJob {
    let (source, language) = &c.sources[index];
    let suffix = if c.assembly_only { "s" } else { "o" };
    let object = match &c.output_arg {
        Some(o) => absolute(cwd, Path::new(o)),
        None => absolute(cwd, &default_output(source, suffix)),
    };
    let mut outputs = vec![object.clone()];
    if c.split_dwarf {
        outputs.push(object.with_extension("dwo"));
    }
    let depfile = c.dep_while_compiling.then(|| depfile(c, &object, cwd));
    let (compile_args, scan_args) = job_args(&c.parts, index, source, false);
    RemoteJob {
        source: source.clone(),
        language: *language,
        object,
        outputs,
        depfile,
        compile_args,
        scan_args,
        target_args: c.target_args.clone(),
        include_flag_dirs: c.include_flag_dirs.clone(),
        split_dwarf: c.split_dwarf,
        assembly: c.assembly_only,
    }
}

/// The dependency file of the job whose output is `object`: at `-MF`, else beside the object;
/// targeting the `-o` value, as the compiler driver does for `-MD`, unless the user names one.
fn depfile(c: &Command, object: &Path, cwd: &Path) -> Depfile {
    let mut shape = c.dep_shape.clone();
    let has_target = shape
        .iter()
        .any(|a| a.as_bytes().starts_with(b"-MT") || a.as_bytes().starts_with(b"-MQ"));
    if let (false, false, Some(o)) = (has_target, c.dep_targets_source, &c.output_arg) {
        shape.extend(["-MQ".into(), o.clone()]);
    }
    Depfile {
        path: c
            .dep_file
            .as_ref()
            .map_or_else(|| object.with_extension("d"), |f| absolute(cwd, f)),
        user_headers_only: c.dep_user_only,
        shape_args: shape,
    }
}

/// The compile and scan arguments of the job of source `index`: the command's parts in order,
/// with only this source, only the `-x` before it, no dependency-file flags; in a compile+link
/// command (`linking`) without the linker's arguments and the link's `-o`.
fn job_args(
    parts: &[Part],
    index: usize,
    source: &Path,
    linking: bool,
) -> (Vec<OsString>, Vec<OsString>) {
    let (mut compile_args, mut scan_args) = (Vec::new(), Vec::new());
    let mut before_source = true;
    for part in parts {
        match part {
            Part::Source(j) if *j == index => {
                compile_args.push(source.as_os_str().to_owned());
                scan_args.push(source.as_os_str().to_owned());
                before_source = false;
            }
            Part::Language(a) if before_source => {
                compile_args.extend(a.iter().cloned());
                scan_args.extend(a.iter().cloned());
            }
            Part::Source(_) | Part::Language(_) | Part::Dependency | Part::LinkInput(_) => {}
            Part::Output(a) | Part::Stop(a) => {
                if !linking {
                    compile_args.extend(a.iter().cloned())
                }
            }
            Part::Common { args, scan } => {
                if *scan || !linking {
                    compile_args.extend(args.iter().cloned());
                }
                if *scan {
                    scan_args.extend(args.iter().cloned());
                }
            }
        }
    }
    (compile_args, scan_args)
}

/// A compile+link command: one job per source into a temporary object (`<n>-<stem>.o`, placed
/// later), and the link with the objects in place of the sources (`-x` dropped: objects need none).
fn compile_and_link(
    parts: &[Part],
    sources: &[(PathBuf, Language)],
    target_args: &[OsString],
    include_flag_dirs: &[PathBuf],
) -> Plan {
    let mut jobs = Vec::with_capacity(sources.len());
    for (index, (source, language)) in sources.iter().enumerate() {
        let stem = source
            .file_stem()
            .unwrap_or(source.as_os_str())
            .to_string_lossy();
        let object = PathBuf::from(format!("{index}-{stem}.o"));
        let (mut compile_args, scan_args) = job_args(parts, index, source, true);
        compile_args.extend(["-c".into(), "-o".into(), object.clone().into_os_string()]);
        jobs.push(RemoteJob {
            source: source.clone(),
            language: *language,
            outputs: vec![object.clone()],
            object,
            depfile: None,
            compile_args,
            scan_args,
            target_args: target_args.to_vec(),
            include_flag_dirs: include_flag_dirs.to_vec(),
            split_dwarf: false,
            assembly: false,
        });
    }
    let mut link = Vec::new();
    for part in parts {
        match part {
            Part::Source(n) => link.push(LinkArg::Object(*n)),
            Part::LinkInput(a) => link.push(LinkArg::Arg(a.clone())),
            Part::Output(a) | Part::Stop(a) | Part::Common { args: a, .. } => {
                link.extend(a.iter().cloned().map(LinkArg::Arg))
            }
            Part::Language(_) | Part::Dependency => {}
        }
    }
    Plan::CompileAndLink { jobs, link }
}

/// Why homcc cannot write `path` as the compiler would, if it cannot.
fn unwritable(path: &Path) -> Option<String> {
    if !path.parent().is_some_and(Path::is_dir) {
        return Some(format!(
            "output directory of {} does not exist",
            path.display()
        ));
    }
    // homcc replaces outputs by renaming; the compiler writes into what is there (a device, a
    // symlink's target), so only regular files and new files can be written remotely.
    if std::fs::symlink_metadata(path).is_ok_and(|m| !m.is_file()) {
        return Some(format!("output {} is not a regular file", path.display()));
    }
    None
}

/// `dir/foo.cpp` → `foo.o` (or `foo.s`), in the working directory, as the compiler does.
fn default_output(source: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(source.file_name().unwrap_or(source.as_os_str())).with_extension(suffix)
}

#[cfg(test)]
mod tests;
