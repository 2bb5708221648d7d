//! The first pass of classification: each argument by its row in homcc-proto's flag table and
//! its role for homcc (`flags`),
//! into a flat [`Command`] (what the command says: outputs, dependency file, sources, the parts
//! of each job's arguments); `plan` makes the jobs from it. Pure.

use std::{
    ffi::{OsStr, OsString},
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use homcc_proto::flags::{self, Flag, Token, Value};

use super::{
    flags::{role, Role::*},
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
    for token in flags::tokens(args) {
        let flag = match token {
            Token::Unknown(arg) if arg == "-" => {
                return Err("reads the source from standard input".into())
            }
            // What remains after expansion: a file that does not exist, kept as the compiler does.
            Token::ResponseFile(arg) => {
                let name = arg.to_string_lossy();
                return Err(format!("response file {name} cannot be read"));
            }
            Token::Input(arg) => {
                command.input(arg, driver);
                continue;
            }
            Token::Unknown(arg) => {
                command.parts.push(Part::Common {
                    args: vec![arg.to_owned()],
                    scan: true,
                });
                continue;
            }
            Token::Flag(flag) => flag,
        };
        if flag.value == Value::Missing {
            return Err(format!("{} lacks its value", flag.arg.to_string_lossy()));
        }
        let part = command.flag(&flag, cwd, driver)?;
        command.parts.push(part);
    }
    Ok(command)
}

impl Command {
    /// An argument that is not a flag: a source in its language, or an input of the link.
    fn input(&mut self, arg: &OsStr, driver: Driver) {
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
                self.parts.push(Part::LinkInput(arg.to_owned()));
            }
        }
    }

    /// A flag, by what it means for homcc (`flags::role`): what it changes, and its part of the
    /// command. `Err`: why the command runs locally.
    fn flag(&mut self, flag: &Flag, cwd: &Path, driver: Driver) -> Result<Part, String> {
        let arg = flag.arg.as_bytes();
        let taken: Vec<OsString> = flag.args().map(OsStr::to_owned).collect();
        let value = flag.value().map(OsStr::to_owned);
        let common = |args: Vec<OsString>| Part::Common { args, scan: true };
        Ok(match role(flag.rule) {
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
            Local(reason) => return Err(reason.into()),
            Refused(why) => {
                let arg = flag.arg.to_string_lossy();
                return Err(format!("{arg} {why}: homccd refuses it"));
            }
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
