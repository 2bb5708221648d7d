//! What classification decides: remote jobs (one per source, with outputs, dependency file
//! and scan arguments), a compile+link whose link runs locally, or a local run and why.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use super::Language;

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
    /// The directories the include flags name, absolute, each once (existing or not).
    pub include_flag_dirs: Vec<PathBuf>,
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
