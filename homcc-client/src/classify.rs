//! Classifies a compiler command line: a single-source compile that can run remotely (with its
//! outputs and the arguments of its dependency scan), or a local run with the reason why.
//!
//! The table names each flag, how its value is attached and what it means for homcc; a small
//! matcher walks the arguments with it.

use std::{
    ffi::{OsStr, OsString},
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use crate::paths::absolute;

/// How a flag's value is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// No value: `-c`.
    Nothing,
    /// `-o file` or `-ofile`.
    NextOrJoined,
    /// Only `-Wp,...`-style joined values, matched as a prefix.
    Joined,
    /// Only the next argument: `-Xclang x`.
    Next,
}

/// What a flag means for homcc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// `-c`: stop at the object file.
    CompileOnly,
    /// `-S`: stop at the assembly file (wins over `-c`, as in the compiler).
    AssemblyOnly,
    Output,
    Language,
    /// `-MD`, `-MMD`: write a dependency file while compiling.
    DepWhileCompiling,
    DepFile,
    /// `-MT`, `-MQ`, `-MP`: shape the dependency file.
    DepShape,
    SplitDwarf,
    /// Changes the compiler's built-in include dirs or target: part of the identity probe.
    Target,
    /// Only for the linker (`-lm`, `-L dir`, `-Wl,...`): not for the scan.
    LinkOnly,
    /// `-Wp,...`: only `-Wp,-MD,file` and `-Wp,-MMD,file` (kbuild) are understood.
    PreprocessorPassThrough,
    /// Cannot be made identical remotely (yet).
    Local(&'static str),
    /// Passed through unchanged, to the scan and the server.
    Pass,
}

struct Flag {
    name: &'static str,
    takes: Takes,
    role: Role,
}

const fn flag(name: &'static str, takes: Takes, role: Role) -> Flag {
    Flag { name, takes, role }
}

use Role::*;
use Takes::*;

/// Specific entries before general prefixes (`-march=native` before `-m`).
const FLAGS: &[Flag] = &[
    flag("-c", Nothing, CompileOnly),
    flag("-o", NextOrJoined, Output),
    flag("-x", NextOrJoined, Language),
    flag("-E", Nothing, Local("preprocessing only (-E)")),
    flag("-S", Nothing, AssemblyOnly),
    flag("-M", Nothing, Local("dependency output only (-M)")),
    flag("-MM", Nothing, Local("dependency output only (-MM)")),
    flag("-MD", Nothing, DepWhileCompiling),
    flag("-MMD", Nothing, DepWhileCompiling),
    flag("-MF", NextOrJoined, DepFile),
    flag("-MT", NextOrJoined, DepShape),
    flag("-MQ", NextOrJoined, DepShape),
    flag("-MP", Nothing, DepShape),
    flag(
        "-MG",
        Nothing,
        Local("-MG treats missing headers as generated files"),
    ),
    flag("-Wp,", Joined, PreprocessorPassThrough),
    flag("-gsplit-dwarf", Nothing, SplitDwarf),
    flag(
        "-march=native",
        Nothing,
        Local("-march=native depends on the machine"),
    ),
    flag(
        "-mtune=native",
        Nothing,
        Local("-mtune=native depends on the machine"),
    ),
    flag(
        "-mcpu=native",
        Nothing,
        Local("-mcpu=native depends on the machine"),
    ),
    flag("--sysroot", NextOrJoined, Target),
    flag("-isysroot", NextOrJoined, Target),
    flag("--target=", Joined, Target),
    flag("-target", Next, Target),
    flag("-nostdinc", Nothing, Target),
    flag("-nostdinc++", Nothing, Target),
    flag("-nostdlibinc", Nothing, Target),
    flag("-ffreestanding", Nothing, Target),
    flag("-fhosted", Nothing, Target),
    flag("-undef", Nothing, Target),
    flag("-stdlib=", Joined, Target),
    flag("-m", Joined, Target),
    flag(
        "-B",
        NextOrJoined,
        Local("-B changes where the compiler finds its programs"),
    ),
    flag(
        "-specs",
        NextOrJoined,
        Local("-specs changes the compiler's configuration"),
    ),
    flag(
        "--coverage",
        Nothing,
        Local("coverage data embeds build paths"),
    ),
    flag(
        "-ftest-coverage",
        Nothing,
        Local("coverage data embeds build paths"),
    ),
    flag(
        "-fprofile-",
        Joined,
        Local("profile flags read or write files beside the build"),
    ),
    flag(
        "-save-temps",
        Joined,
        Local("-save-temps writes intermediate files"),
    ),
    flag("-fdump-", Joined, Local("-fdump-* writes dump files")),
    flag("-fplugin", Joined, Local("compiler plugins")),
    flag(
        "-fsyntax-only",
        Nothing,
        Local("-fsyntax-only writes nothing"),
    ),
    flag("-v", Nothing, Local("verbose compiler run (-v)")),
    flag("-###", Nothing, Local("-### only prints commands")),
    flag("-I", NextOrJoined, Pass),
    flag("-isystem", NextOrJoined, Pass),
    flag("-iquote", NextOrJoined, Pass),
    flag("-idirafter", NextOrJoined, Pass),
    flag("-include", NextOrJoined, Pass),
    flag("-imacros", NextOrJoined, Pass),
    flag("-iprefix", NextOrJoined, Pass),
    flag("-iwithprefix", NextOrJoined, Pass),
    flag("-iwithprefixbefore", NextOrJoined, Pass),
    flag("-D", NextOrJoined, Pass),
    flag("-U", NextOrJoined, Pass),
    flag("-Xclang", Next, Pass),
    flag("-Xpreprocessor", Next, Pass),
    flag("-Xassembler", Next, Pass),
    flag("-l", NextOrJoined, LinkOnly),
    flag("-L", NextOrJoined, LinkOnly),
    flag("-Wl,", Joined, LinkOnly),
    flag("-Xlinker", Next, LinkOnly),
];

/// Source languages homcc compiles remotely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    C,
    Cxx,
    /// Assembler with C preprocessor directives (`.S`, `.sx`).
    AsmCpp,
    ObjC,
    ObjCxx,
    /// Already preprocessed C (`.i`) and C++ (`.ii`): the compile reads no other file.
    PreprocessedC,
    PreprocessedCxx,
}

impl Language {
    /// The `-x` name.
    pub fn name(self) -> &'static str {
        match self {
            Language::C => "c",
            Language::Cxx => "c++",
            Language::AsmCpp => "assembler-with-cpp",
            Language::ObjC => "objective-c",
            Language::ObjCxx => "objective-c++",
            Language::PreprocessedC => "cpp-output",
            Language::PreprocessedCxx => "c++-cpp-output",
        }
    }

    /// Whether the source is already preprocessed.
    pub fn is_preprocessed(self) -> bool {
        matches!(self, Language::PreprocessedC | Language::PreprocessedCxx)
    }

    /// Every language homcc compiles remotely.
    const ALL: [Language; 7] = [
        Language::C,
        Language::Cxx,
        Language::AsmCpp,
        Language::ObjC,
        Language::ObjCxx,
        Language::PreprocessedC,
        Language::PreprocessedCxx,
    ];

    fn from_x(name: &OsStr) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|l| l.name().as_bytes() == name.as_bytes())
    }

    fn from_extension(path: &Path) -> Option<Self> {
        match path.extension()?.as_bytes() {
            b"c" => Some(Language::C),
            b"cc" | b"cp" | b"cxx" | b"cpp" | b"CPP" | b"c++" | b"C" => Some(Language::Cxx),
            b"S" | b"sx" => Some(Language::AsmCpp),
            b"m" => Some(Language::ObjC),
            b"mm" | b"M" => Some(Language::ObjCxx),
            b"i" => Some(Language::PreprocessedC),
            b"ii" => Some(Language::PreprocessedCxx),
            _ => None,
        }
    }
}

/// A dependency file the user asked for (`-MD`/`-MMD`). The client writes it with the local
/// compiler during the dependency scan, which gives the local bytes by construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Depfile {
    /// Where it goes (`-MF`, else the object with `.d`), absolute.
    pub path: PathBuf,
    /// `-MMD`: system headers are left out.
    pub user_headers_only: bool,
    /// The user's `-MT`, `-MQ`, `-MP`, plus `-MQ <-o value>` when no target is given, as the
    /// compiler driver adds for `-MD`.
    pub shape_args: Vec<OsString>,
}

/// A compile that can run remotely: one source of the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJob {
    /// The source as written on the command line.
    pub source: PathBuf,
    pub language: Language,
    /// The object (or assembly) file, absolute.
    pub object: PathBuf,
    /// The files the server writes (object, split DWARF), absolute.
    pub outputs: Vec<PathBuf>,
    pub depfile: Option<Depfile>,
    /// The arguments the server compiles with: the user's for this source, without
    /// dependency-file flags.
    pub compile_args: Vec<OsString>,
    /// The arguments of the dependency scan: the command without its outputs; `-M` is added.
    pub scan_args: Vec<OsString>,
    /// The flags that change the built-in include dirs or the target.
    pub target_args: Vec<OsString>,
    /// `-gsplit-dwarf`: identical remotely only with clang.
    pub split_dwarf: bool,
    /// `-S`: the compiler proper writes the output itself (gcc removes it after an error).
    pub assembly: bool,
}

/// What to do with a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// One remote compile per source (several run in parallel).
    Remote(Vec<RemoteJob>),
    /// Compile and link (`gcc a.c b.c -o app`): each source remotely into a temporary object
    /// (the jobs' objects are relative names, to be placed with [`RemoteJob::place_object`]),
    /// then the original link locally on those objects.
    CompileAndLink {
        jobs: Vec<RemoteJob>,
        link: Vec<LinkArg>,
    },
    /// Run the compiler locally, for this reason.
    Local(String),
}

/// One argument of the local link of a compile+link command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkArg {
    Arg(OsString),
    /// The object of job `n`.
    Object(usize),
}

/// The link command: `link` with each job's object in place of its source.
pub fn link_args(link: &[LinkArg], objects: &[PathBuf]) -> Vec<OsString> {
    link.iter()
        .map(|a| match a {
            LinkArg::Arg(arg) => arg.clone(),
            LinkArg::Object(n) => objects[*n].clone().into_os_string(),
        })
        .collect()
}

impl RemoteJob {
    /// Puts the temporary object of a compile+link job into `dir`.
    pub fn place_object(&mut self, dir: &Path) {
        self.object = dir.join(&self.object);
        self.outputs = vec![self.object.clone()];
        if let Some(last) = self.compile_args.last_mut() {
            *last = self.object.clone().into_os_string();
        }
    }
}

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

/// Finds the table entry for `arg`: exact names first, then joined prefixes; with the value.
fn lookup(arg: &[u8]) -> Option<(&'static Flag, Option<&[u8]>)> {
    if let Some(f) = FLAGS.iter().find(|f| f.name.as_bytes() == arg) {
        return Some((f, None));
    }
    FLAGS
        .iter()
        .filter(|f| matches!(f.takes, NextOrJoined | Joined))
        .filter(|f| arg.starts_with(f.name.as_bytes()))
        .max_by_key(|f| f.name.len())
        .map(|f| (f, Some(&arg[f.name.len()..])))
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
    let mut compile_only = false;
    let mut assembly_only = false;
    let mut language: Option<Language> = None;
    let mut dep_while_compiling = false;
    let mut dep_file: Option<PathBuf> = None;
    let mut dep_user_only = false;
    let mut dep_shape: Vec<OsString> = Vec::new();
    // gcc's preprocessor, given `-Wp,-MD,file` directly, targets `<source>.o`, not the object.
    let mut dep_targets_object = true;
    let mut output_arg: Option<OsString> = None;
    let mut split_dwarf = false;
    let mut sources: Vec<(PathBuf, Language)> = Vec::new();
    let mut not_source: Option<PathBuf> = None;
    let mut other_language: Option<PathBuf> = None;
    let mut parts: Vec<Part> = Vec::new();
    let mut target_args = Vec::new();

    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let bytes = arg.as_bytes();
        i += 1;
        if bytes == b"-" {
            return local("reads the source from standard input");
        }
        if bytes.starts_with(b"@") {
            // What remains after expansion: a file that does not exist, kept as the compiler does.
            return local(format!(
                "response file {} cannot be read",
                arg.to_string_lossy()
            ));
        }
        if !bytes.starts_with(b"-") {
            let path = PathBuf::from(arg);
            let by_name = Language::from_extension(&path).map(|l| match (l, driver) {
                (Language::C, Driver { cxx: true, .. }) => Language::Cxx,
                (Language::PreprocessedC, Driver { cxx: true, .. }) => Language::PreprocessedCxx,
                (l, _) => l,
            });
            match language.or(by_name) {
                Some(lang) => {
                    parts.push(Part::Source(sources.len()));
                    sources.push((path, lang));
                }
                None => {
                    let other = path
                        .extension()
                        .and_then(OsStr::to_str)
                        .is_some_and(|e| OTHER_LANGUAGES.contains(&e));
                    if other {
                        other_language = other_language.or(Some(path.clone()));
                    }
                    not_source = not_source.or(Some(path));
                    parts.push(Part::LinkInput(arg.clone()));
                }
            }
            continue;
        }
        let Some((flag, joined)) = lookup(bytes) else {
            parts.push(Part::Common {
                args: vec![arg.clone()],
                scan: true,
            });
            continue;
        };
        let mut taken = vec![arg.clone()];
        let value: Option<OsString> = match (flag.takes, joined) {
            (Nothing, _) => None,
            (NextOrJoined, Some(v)) if !v.is_empty() => Some(OsStr::from_bytes(v).to_owned()),
            (Joined, Some(v)) => Some(OsStr::from_bytes(v).to_owned()),
            (NextOrJoined | Next, _) => {
                let Some(next) = args.get(i) else {
                    return local(format!("{} lacks its value", arg.to_string_lossy()));
                };
                i += 1;
                taken.push(next.clone());
                Some(next.clone())
            }
            (Joined, None) => None,
        };
        let part = match flag.role {
            CompileOnly => {
                compile_only = true;
                Part::Stop(taken)
            }
            AssemblyOnly => {
                assembly_only = true;
                Part::Stop(taken)
            }
            Output => {
                output_arg = value;
                Part::Output(taken)
            }
            Language => {
                let v = value.unwrap_or_default();
                if v.as_bytes() == b"none" {
                    language = None;
                } else {
                    match Language::from_x(&v) {
                        Some(l) => language = Some(l),
                        None => {
                            return local(format!(
                                "language '{}' is compiled locally",
                                v.to_string_lossy()
                            ))
                        }
                    }
                }
                Part::Language(taken)
            }
            DepWhileCompiling => {
                dep_while_compiling = true;
                dep_user_only = bytes == b"-MMD";
                Part::Dependency
            }
            DepFile => {
                dep_file = value.map(PathBuf::from);
                Part::Dependency
            }
            PreprocessorPassThrough => {
                let value = value.unwrap_or_default();
                let mut items = value.as_bytes().splitn(2, |b| *b == b',');
                match (items.next(), items.next()) {
                    (Some(kind @ (b"-MD" | b"-MMD")), Some(file)) if !file.is_empty() => {
                        dep_while_compiling = true;
                        dep_user_only = kind == b"-MMD";
                        dep_file = Some(PathBuf::from(OsStr::from_bytes(file)));
                        dep_targets_object = driver.clang;
                        Part::Dependency
                    }
                    _ => return local("preprocessor options through -Wp, other than -MD/-MMD"),
                }
            }
            DepShape => {
                dep_shape.extend(taken);
                Part::Dependency
            }
            SplitDwarf => {
                split_dwarf = true;
                Part::Common {
                    args: taken,
                    scan: true,
                }
            }
            Target => {
                target_args.extend(taken.iter().cloned());
                Part::Common {
                    args: taken,
                    scan: true,
                }
            }
            // The server's compiler prints the same "unused" warnings the local one would.
            LinkOnly => Part::Common {
                args: taken,
                scan: false,
            },
            Local(reason) => return local(reason),
            Pass => Part::Common {
                args: taken,
                scan: true,
            },
        };
        parts.push(part);
    }

    if !compile_only && !assembly_only {
        if sources.is_empty() {
            return local("linking only: runs locally");
        }
        if let Some(path) = other_language {
            return local(format!("input {} is compiled locally", path.display()));
        }
        if dep_while_compiling || split_dwarf {
            return local(
                "dependency files and split DWARF of a compile+link command are written locally",
            );
        }
        return compile_and_link(&parts, &sources, &target_args);
    }
    if let Some(path) = not_source {
        return local(format!("input {} is not a C or C++ source", path.display()));
    }
    if sources.is_empty() {
        return local("no source file");
    }
    if dep_while_compiling && sources.iter().any(|(_, l)| l.is_preprocessed()) {
        return local("a dependency file of a preprocessed source");
    }
    if sources.len() > 1 && (output_arg.is_some() || dep_file.is_some()) {
        return local("-o or -MF with several sources: the compiler reports it");
    }
    if output_arg.as_ref().is_some_and(|o| o.as_bytes() == b"-") {
        return local("writes the object to standard output (-o -)");
    }
    let suffix = if assembly_only { "s" } else { "o" };
    let mut jobs = Vec::with_capacity(sources.len());
    for (index, (source, language)) in sources.iter().enumerate() {
        let object = match &output_arg {
            Some(o) => absolute(cwd, Path::new(o)),
            None => absolute(cwd, &default_output(source, suffix)),
        };
        let mut outputs = vec![object.clone()];
        if split_dwarf {
            outputs.push(object.with_extension("dwo"));
        }
        let depfile = dep_while_compiling.then(|| {
            let mut shape = dep_shape.clone();
            let has_target = shape
                .iter()
                .any(|a| a.as_bytes().starts_with(b"-MT") || a.as_bytes().starts_with(b"-MQ"));
            if let (false, true, Some(o)) = (has_target, dep_targets_object, &output_arg) {
                shape.extend(["-MQ".into(), o.clone()]);
            }
            Depfile {
                path: dep_file
                    .as_ref()
                    .map_or_else(|| object.with_extension("d"), |f| absolute(cwd, f)),
                user_headers_only: dep_user_only,
                shape_args: shape,
            }
        });
        for path in outputs.iter().chain(depfile.as_ref().map(|d| &d.path)) {
            if let Some(reason) = unwritable(path) {
                return local(reason);
            }
        }
        let (compile_args, scan_args) = job_args(&parts, index, source, false);
        jobs.push(RemoteJob {
            source: source.clone(),
            language: *language,
            object,
            outputs,
            depfile,
            compile_args,
            scan_args,
            target_args: target_args.clone(),
            split_dwarf,
            assembly: assembly_only,
        });
    }
    Plan::Remote(jobs)
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
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<OsString> {
        line.split_whitespace().map(OsString::from).collect()
    }

    /// The jobs of a command that must run remotely.
    fn jobs(line: &str) -> Vec<RemoteJob> {
        match classify(
            &args(line),
            Path::new("/tmp"),
            Driver::from_name(OsStr::new("gcc")),
        ) {
            Plan::Remote(jobs) => jobs,
            other => panic!("{line}: {other:?}"),
        }
    }

    /// Expects a single remote job with this object and these scan args.
    fn remote(line: &str, object: &str, scan: &str) {
        let jobs = jobs(line);
        assert_eq!(jobs.len(), 1, "{line}");
        assert_eq!(jobs[0].object, Path::new(object), "{line}");
        assert_eq!(jobs[0].scan_args, args(scan), "{line}");
    }

    fn local_because(line: &str, reason: &str) {
        match classify(
            &args(line),
            Path::new("/tmp"),
            Driver::from_name(OsStr::new("gcc")),
        ) {
            Plan::Local(why) => assert!(why.contains(reason), "{line}: {why}"),
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn compile_only_forms() {
        remote("-c a.c -o a.o", "/tmp/a.o", "a.c");
        remote("-c a.c -oout.o", "/tmp/out.o", "a.c");
        remote("-c src/a.cpp", "/tmp/a.o", "src/a.cpp");
        remote("-O2 -g -c a.cc -o /tmp/x/../b.o", "/tmp/b.o", "-O2 -g a.cc");
        remote(
            "-c -I inc -Iinc2 -DX=1 -D Y a.c",
            "/tmp/a.o",
            "-I inc -Iinc2 -DX=1 -D Y a.c",
        );
        remote("-c -MD -MF a.d -MT t -MP a.c -o a.o", "/tmp/a.o", "a.c");
        remote("-c -x c++ a.txt -o a.o", "/tmp/a.o", "-x c++ a.txt");
        remote("-S a.c", "/tmp/a.s", "a.c");
        remote("-S src/a.cpp -o out.asm", "/tmp/out.asm", "src/a.cpp");
        remote("-c -S a.c", "/tmp/a.s", "a.c");
        remote(
            "-c -m64 --sysroot=/ a.c",
            "/tmp/a.o",
            "-m64 --sysroot=/ a.c",
        );
    }

    #[test]
    fn outputs() {
        let job = jobs("-c -gsplit-dwarf -MD a.c -o a.o").remove(0);
        assert_eq!(
            job.outputs,
            [PathBuf::from("/tmp/a.o"), PathBuf::from("/tmp/a.dwo")]
        );
        let dep = job.depfile.unwrap();
        assert_eq!(
            (dep.path.to_str().unwrap(), dep.user_headers_only),
            ("/tmp/a.d", false)
        );
        assert_eq!(dep.shape_args, args("-MQ a.o"));
        assert_eq!(job.compile_args, args("-c -gsplit-dwarf a.c -o a.o"));
        assert_eq!(job.target_args, Vec::<OsString>::new());
        let job = jobs("-c -MMD -MF deps/../a.dep -MT t -MP a.c -m32").remove(0);
        let dep = job.depfile.unwrap();
        assert_eq!(
            (dep.path.to_str().unwrap(), dep.user_headers_only),
            ("/tmp/a.dep", true)
        );
        assert_eq!(dep.shape_args, args("-MT t -MP"));
        assert_eq!(job.compile_args, args("-c a.c -m32"));
        assert_eq!(job.target_args, args("-m32"));
    }

    #[test]
    fn several_sources_are_one_job_each() {
        let jobs = jobs("-O2 -c a.c -Iinc sub/b.cpp -DX -MD -x c c.txt");
        let objects: Vec<_> = jobs.iter().map(|j| j.object.to_str().unwrap()).collect();
        assert_eq!(objects, ["/tmp/a.o", "/tmp/b.o", "/tmp/c.o"]);
        assert_eq!(jobs[1].compile_args, args("-O2 -c -Iinc sub/b.cpp -DX"));
        assert_eq!(jobs[2].compile_args, args("-O2 -c -Iinc -DX -x c c.txt"));
        assert_eq!(jobs[2].scan_args, args("-O2 -Iinc -DX -x c c.txt"));
        let depfiles: Vec<_> = jobs
            .iter()
            .map(|j| j.depfile.as_ref().unwrap().path.to_str().unwrap())
            .collect();
        assert_eq!(depfiles, ["/tmp/a.d", "/tmp/b.d", "/tmp/c.d"]);
        assert_eq!(
            (jobs[0].language, jobs[1].language, jobs[2].language),
            (Language::C, Language::Cxx, Language::C)
        );
    }

    #[test]
    fn linker_flags_go_to_the_compile_not_the_scan() {
        let job = jobs("-c a.c -lm -L/lib -Wl,-O1 -Xlinker -x").remove(0);
        assert_eq!(
            job.compile_args,
            args("-c a.c -lm -L/lib -Wl,-O1 -Xlinker -x")
        );
        assert_eq!(job.scan_args, args("a.c"));
    }

    #[test]
    fn compile_and_link_compiles_each_source_then_links_the_objects() {
        let Plan::CompileAndLink { mut jobs, link } = classify(
            &args("a.c -x c++ b.txt -x none -o app -lm -O2 lib.a"),
            Path::new("/tmp"),
            Driver::from_name(OsStr::new("gcc")),
        ) else {
            panic!("not a compile+link plan")
        };
        assert_eq!(jobs[0].compile_args, args("a.c -O2 -c -o 0-a.o"));
        assert_eq!(jobs[1].compile_args, args("-x c++ b.txt -O2 -c -o 1-b.o"));
        assert_eq!(jobs[1].language, Language::Cxx);
        jobs[0].place_object(Path::new("/t"));
        assert_eq!(jobs[0].compile_args.last().unwrap(), "/t/0-a.o");
        assert_eq!(jobs[0].outputs, [PathBuf::from("/t/0-a.o")]);
        let objects = [PathBuf::from("/t/0-a.o"), PathBuf::from("/t/1-b.o")];
        assert_eq!(
            link_args(&link, &objects),
            args("/t/0-a.o /t/1-b.o -o app -lm -O2 lib.a")
        );
    }

    #[test]
    fn wp_md_is_a_dependency_file_whose_target_depends_on_the_driver() {
        let depfile = |name: &str, line: &str| match classify(
            &args(line),
            Path::new("/tmp"),
            Driver::from_name(OsStr::new(name)),
        ) {
            Plan::Remote(mut jobs) => jobs.remove(0).depfile.unwrap(),
            other => panic!("{other:?}"),
        };
        let gcc = depfile("gcc", "-Wp,-MD,.b.o.d -c a.c -o b.o");
        assert_eq!(
            (gcc.path.to_str().unwrap(), gcc.user_headers_only),
            ("/tmp/.b.o.d", false)
        );
        assert!(
            gcc.shape_args.is_empty(),
            "gcc's preprocessor targets a.o: {:?}",
            gcc.shape_args
        );
        let clang = depfile("clang", "-Wp,-MMD,a.d -c a.c -o b.o");
        assert!(clang.user_headers_only);
        assert_eq!(clang.shape_args, args("-MQ b.o"));
    }

    #[test]
    fn a_cxx_driver_compiles_c_files_as_cxx() {
        let plan = |name: &str| match classify(
            &args("-c a.c"),
            Path::new("/tmp"),
            Driver::from_name(OsStr::new(name)),
        ) {
            Plan::Remote(jobs) => jobs[0].language,
            other => panic!("{other:?}"),
        };
        assert_eq!(plan("gcc"), Language::C);
        assert_eq!(plan("/usr/bin/clang-14"), Language::C);
        for name in [
            "g++",
            "c++",
            "clang++",
            "/usr/bin/clang++-14",
            "x86_64-linux-gnu-g++-12",
        ] {
            assert_eq!(plan(name), Language::Cxx, "{name}");
        }
    }

    /// One line per flag family of the table: how its value is taken, and where it goes.
    #[test]
    fn every_flag_family() {
        // (command, compile args sent to the server, scan args)
        let check = |line: &str, compile: &str, scan: &str| {
            let job = jobs(line).remove(0);
            assert_eq!(job.compile_args, args(compile), "compile args of {line}");
            assert_eq!(job.scan_args, args(scan), "scan args of {line}");
        };
        check("-c a.c -o x.o", "-c a.c -o x.o", "a.c");
        check("-c a.c -ox.o", "-c a.c -ox.o", "a.c");
        check("-S a.c", "-S a.c", "a.c");
        check("-c -x c a.txt", "-c -x c a.txt", "-x c a.txt");
        check("-c -xc a.txt", "-c -xc a.txt", "-xc a.txt");
        check("-c a.c -MD -MMD -MF d -MT t -MQ q -MP", "-c a.c", "a.c");
        check("-c a.c -MFd -MTt -MQq", "-c a.c", "a.c");
        check("-c a.c -Wp,-MD,x.d", "-c a.c", "a.c");
        check(
            "-c a.c -gsplit-dwarf",
            "-c a.c -gsplit-dwarf",
            "a.c -gsplit-dwarf",
        );
        check(
            "-c a.c --sysroot=/s --sysroot /t -isysroot /u -isysroot/v",
            "-c a.c --sysroot=/s --sysroot /t -isysroot /u -isysroot/v",
            "a.c --sysroot=/s --sysroot /t -isysroot /u -isysroot/v",
        );
        check(
            "-c a.c --target=x -target y -m32 -nostdinc -nostdinc++ -nostdlibinc -stdlib=libc++",
            "-c a.c --target=x -target y -m32 -nostdinc -nostdinc++ -nostdlibinc -stdlib=libc++",
            "a.c --target=x -target y -m32 -nostdinc -nostdinc++ -nostdlibinc -stdlib=libc++",
        );
        check(
            "-c a.c -ffreestanding -fhosted -undef",
            "-c a.c -ffreestanding -fhosted -undef",
            "a.c -ffreestanding -fhosted -undef",
        );
        check(
            "-c a.c -I i -Ij -isystem s -isystemt -iquote q -iquoter -idirafter d -idirafterf",
            "-c a.c -I i -Ij -isystem s -isystemt -iquote q -iquoter -idirafter d -idirafterf",
            "a.c -I i -Ij -isystem s -isystemt -iquote q -iquoter -idirafter d -idirafterf",
        );
        check("-c a.c -include h.h -includeg.h -imacros m.h -iprefix p -iwithprefix w -iwithprefixbefore b", "-c a.c -include h.h -includeg.h -imacros m.h -iprefix p -iwithprefix w -iwithprefixbefore b", "a.c -include h.h -includeg.h -imacros m.h -iprefix p -iwithprefix w -iwithprefixbefore b");
        check(
            "-c a.c -D X -DY=1 -U Z -UW",
            "-c a.c -D X -DY=1 -U Z -UW",
            "a.c -D X -DY=1 -U Z -UW",
        );
        check(
            "-c a.c -Xclang -x -Xpreprocessor -y -Xassembler -z",
            "-c a.c -Xclang -x -Xpreprocessor -y -Xassembler -z",
            "a.c -Xclang -x -Xpreprocessor -y -Xassembler -z",
        );
        check(
            "-c a.c -l m -lz -L d -Le -Wl,-O1 -Xlinker -x",
            "-c a.c -l m -lz -L d -Le -Wl,-O1 -Xlinker -x",
            "a.c",
        );
        check(
            "-c a.c -O2 -g -Wall -std=c11 -fPIC -unknown-flag",
            "-c a.c -O2 -g -Wall -std=c11 -fPIC -unknown-flag",
            "a.c -O2 -g -Wall -std=c11 -fPIC -unknown-flag",
        );
        for (line, reason) in [
            ("-E a.c", "-E"),
            ("-M a.c", "-M"),
            ("-MM a.c", "-MM"),
            ("-c a.c -MG -MD", "-MG"),
            ("-c a.c -Wp,-DX", "-Wp,"),
            ("-c a.c -march=native", "native"),
            ("-c a.c -mtune=native", "native"),
            ("-c a.c -mcpu=native", "native"),
            ("-c a.c -B /opt/bin", "-B"),
            ("-c a.c -B/opt/bin", "-B"),
            ("-c a.c -specs=x.specs", "-specs"),
            ("-c a.c --coverage", "coverage"),
            ("-c a.c -ftest-coverage", "coverage"),
            ("-c a.c -fprofile-arcs", "profile"),
            ("-c a.c -fprofile-use=x", "profile"),
            ("-c a.c -save-temps", "-save-temps"),
            ("-c a.c -save-temps=obj", "-save-temps"),
            ("-c a.c -fdump-tree-all", "-fdump-"),
            ("-c a.c -fplugin=x.so", "plugins"),
            ("-c a.c -fsyntax-only", "-fsyntax-only"),
            ("-c a.c -v", "-v"),
            ("-c a.c -###", "-###"),
            ("-c a.c -x fortran", "fortran"),
            ("-c x.h", "x.h"),
        ] {
            local_because(line, reason);
        }
    }

    #[test]
    fn local_forms() {
        local_because("a.o b.o -o app", "linking only");
        local_because("a.c x.s -o app", "x.s is compiled locally");
        local_because("a.c -MD -o app", "compile+link");
        local_because("a.c -gsplit-dwarf -o app", "compile+link");
        local_because("-c", "no source");
        local_because("-E a.c", "preprocessing");
        local_because("-M a.c", "dependency output only");
        local_because("-c a.c b.c -o x.o", "several sources");
        local_because("-c a.c b.c -MD -MF x.d", "several sources");
        local_because("-c a.c b.o", "not a C or C++ source");
        local_because("-c -", "standard input");
        local_because("-c a.s", "not a C or C++ source");
        remote("-c a.S -o a.o", "/tmp/a.o", "a.S");
        remote("-c a.m", "/tmp/a.o", "a.m");
        remote("-c b.mm -o b.o", "/tmp/b.o", "b.mm");
        remote("-c a.i", "/tmp/a.o", "a.i");
        remote(
            "-c -x cpp-output a.txt -o a.o",
            "/tmp/a.o",
            "-x cpp-output a.txt",
        );
        remote(
            "-c -x assembler-with-cpp a.asm",
            "/tmp/a.o",
            "-x assembler-with-cpp a.asm",
        );

        local_because("-c -march=native a.c", "machine");
        local_because("-c --coverage a.c", "coverage");
        local_because("-c -fprofile-generate a.c", "profile");
        local_because("-c @args", "response file @args cannot be read");
        local_because("-c a.c -o", "lacks its value");
        local_because("-c -x fortran a.f", "language 'fortran'");
        local_because("-c a.c -o /nonexistent-dir/a.o", "does not exist");
        local_because("-c a.c -MD -MF /nonexistent-dir/a.d", "does not exist");
        local_because("-c a.c -MD -MG", "generated");
        local_because("-c a.c -Wp,-DX", "-Wp,");
        local_because("-c a.i -MD", "preprocessed");
        local_because("-c a.c -o /dev/null", "not a regular file");
        local_because("-c a.c -o -", "standard output");
    }
}
