//! The first pass of classification: each argument by its entry in the flag table (`flags`),
//! into a flat [`Command`] (what the command says: outputs, dependency file, sources, the parts
//! of each job's arguments); `plan` makes the jobs from it. Pure.

use std::{
    ffi::{OsStr, OsString},
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use super::{
    flags::{lookup, Role, Role::*, Takes::*},
    Driver, Language, Part, OTHER_LANGUAGES,
};
use crate::paths::absolute;

/// What a command line says, read flag by flag against the table (`read`); `plan` makes the
/// jobs from it.
#[derive(Debug, Default)]
pub(super) struct Command {
    /// `-c`, `-S` (which wins, as in the compiler).
    pub(super) compile_only: bool,
    pub(super) assembly_only: bool,
    /// `-MD`/`-MMD` (or kbuild's `-Wp,-MD,file`), `-MF`, `-MMD`'s leaving out of system
    /// headers, and `-MT`/`-MQ`/`-MP`.
    pub(super) dep_while_compiling: bool,
    pub(super) dep_file: Option<PathBuf>,
    pub(super) dep_user_only: bool,
    pub(super) dep_shape: Vec<OsString>,
    /// gcc's preprocessor, given `-Wp,-MD,file` directly, targets `<source>.o`, not the object.
    pub(super) dep_targets_source: bool,
    /// `-o`'s value.
    pub(super) output_arg: Option<OsString>,
    pub(super) split_dwarf: bool,
    pub(super) sources: Vec<(PathBuf, Language)>,
    /// The first input that is not a source, and the first in a language compiled locally.
    pub(super) not_source: Option<PathBuf>,
    pub(super) other_language: Option<PathBuf>,
    pub(super) parts: Vec<Part>,
    pub(super) target_args: Vec<OsString>,
    pub(super) include_flag_dirs: Vec<PathBuf>,
    /// The language of the last `-x`, for the inputs after it.
    pub(super) language: Option<Language>,
}

/// The first pass: each argument by its table entry, into a [`Command`]; `Err` is why the
/// command runs locally. Pure.
pub(super) fn read(args: &[OsString], cwd: &Path, driver: Driver) -> Result<Command, String> {
    let mut command = Command::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let bytes = arg.as_bytes();
        i += 1;
        if bytes == b"-" {
            return Err("reads the source from standard input".into());
        }
        if bytes.starts_with(b"@") {
            // What remains after expansion: a file that does not exist, kept as the compiler does.
            let name = arg.to_string_lossy();
            return Err(format!("response file {name} cannot be read"));
        }
        if !bytes.starts_with(b"-") {
            command.input(arg, driver);
            continue;
        }
        let Some((flag, joined)) = lookup(bytes) else {
            command.parts.push(Part::Common {
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
                    return Err(format!("{} lacks its value", arg.to_string_lossy()));
                };
                i += 1;
                taken.push(next.clone());
                Some(next.clone())
            }
            (Joined, None) => None,
        };
        let part = command.flag(flag.role, bytes, taken, value, cwd, driver)?;
        command.parts.push(part);
    }
    Ok(command)
}

impl Command {
    /// An argument that is not a flag: a source in its language, or an input of the link.
    fn input(&mut self, arg: &OsString, driver: Driver) {
        let path = PathBuf::from(arg);
        let by_name = Language::from_extension(&path).map(|l| match (l, driver) {
            (Language::C, Driver { cxx: true, .. }) => Language::Cxx,
            (Language::PreprocessedC, Driver { cxx: true, .. }) => Language::PreprocessedCxx,
            (l, _) => l,
        });
        match self.language.or(by_name) {
            Some(lang) => {
                self.parts.push(Part::Source(self.sources.len()));
                self.sources.push((path, lang));
            }
            None => {
                let other = (path.extension().and_then(OsStr::to_str))
                    .is_some_and(|e| OTHER_LANGUAGES.contains(&e));
                if other {
                    self.other_language = self.other_language.take().or(Some(path.clone()));
                }
                self.not_source = self.not_source.take().or(Some(path));
                self.parts.push(Part::LinkInput(arg.clone()));
            }
        }
    }

    /// A flag `arg` of `role`, with the arguments it `taken` and its `value`: what it changes,
    /// and its part of the command. `Err`: why the command runs locally.
    fn flag(
        &mut self,
        role: Role,
        arg: &[u8],
        taken: Vec<OsString>,
        value: Option<OsString>,
        cwd: &Path,
        driver: Driver,
    ) -> Result<Part, String> {
        let common = |args: Vec<OsString>| Part::Common { args, scan: true };
        Ok(match role {
            CompileOnly => {
                self.compile_only = true;
                Part::Stop(taken)
            }
            AssemblyOnly => {
                self.assembly_only = true;
                Part::Stop(taken)
            }
            Output => {
                self.output_arg = value;
                Part::Output(taken)
            }
            Language => {
                let v = value.unwrap_or_default();
                self.language = match v.as_bytes() {
                    b"none" => None,
                    _ => Some(Language::from_x(&v).ok_or_else(|| {
                        format!("language '{}' is compiled locally", v.to_string_lossy())
                    })?),
                };
                Part::Language(taken)
            }
            DepWhileCompiling => {
                self.dep_while_compiling = true;
                self.dep_user_only = arg == b"-MMD";
                Part::Dependency
            }
            DepFile => {
                self.dep_file = value.map(PathBuf::from);
                Part::Dependency
            }
            PreprocessorPassThrough => {
                let value = value.unwrap_or_default();
                let mut items = value.as_bytes().splitn(2, |b| *b == b',');
                match (items.next(), items.next()) {
                    (Some(kind @ (b"-MD" | b"-MMD")), Some(file)) if !file.is_empty() => {
                        self.dep_while_compiling = true;
                        self.dep_user_only = kind == b"-MMD";
                        self.dep_file = Some(PathBuf::from(OsStr::from_bytes(file)));
                        self.dep_targets_source = !driver.clang;
                        Part::Dependency
                    }
                    _ => return Err("preprocessor options through -Wp, other than -MD/-MMD".into()),
                }
            }
            DepShape => {
                self.dep_shape.extend(taken);
                Part::Dependency
            }
            SplitDwarf => {
                self.split_dwarf = true;
                common(taken)
            }
            Target => {
                self.target_args.extend(taken.iter().cloned());
                common(taken)
            }
            // The server's compiler prints the same "unused" warnings the local one would.
            LinkOnly => Part::Common {
                args: taken,
                scan: false,
            },
            Local(reason) | Refused(reason) => return Err(reason.into()),
            IncludeDir => {
                let dir = absolute(cwd, Path::new(&value.unwrap_or_default()));
                if !self.include_flag_dirs.contains(&dir) {
                    self.include_flag_dirs.push(dir);
                }
                common(taken)
            }
            Pass => common(taken),
        })
    }
}
