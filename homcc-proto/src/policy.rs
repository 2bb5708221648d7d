//! The argument policy (docs/security.md; docs/protocol.md §4, `Forbidden`): homccd runs a
//! client's compiler arguments only if every flag is in its allowlist, so that no argument runs
//! or loads code, reads or writes outside the job root, or links. homcc checks the same table
//! before it asks a host, so a command homccd would refuse runs locally at once, quietly.
//!
//! The table names each flag family, how its value is attached and what homccd does with it; the
//! first row that matches an argument decides (specific rows come before general families). Paths
//! in the flags allowed here are moved into the job root, and kept from leaving it, by `args`.

use std::{ffi::OsString, os::unix::ffi::OsStrExt};

/// Why homccd will not run a command line. Each message names the argument.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Forbidden {
    #[error("{arg} {why}: homccd refuses it")]
    Refused { arg: String, why: &'static str },
    #[error("unknown flag {arg}: homccd runs only flags it knows; compile locally or ask for it to be allowed")]
    Unknown { arg: String },
    #[error("{arg} names a path that homccd cannot map into the job root: homccd refuses it")]
    Path { arg: String },
    #[error("{arg}: homccd accepts only {allowed}")]
    Value { arg: String, allowed: String },
    #[error("{arg} lacks its value")]
    MissingValue { arg: String },
    #[error("no -c, -S or -E: the command would link, and homccd never links")]
    Links,
}

/// How a flag's value is attached, and so how a row matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    /// No value: the argument is the spelling (`-c`).
    None,
    /// A family: every argument that starts with the spelling (`-O2`, `-std=c++17`, `-Wa,x,y`).
    /// A `*` in the spelling stands for any text (`-f*list=`).
    Joined,
    /// The next argument (`-Xclang x`).
    Separate,
    /// The next argument, or joined (`-o a.o`, `-oa.o`).
    Either,
}

/// What homccd does with an argument that matches a row.
#[derive(Debug, Clone, Copy)]
enum Verdict {
    Allow,
    /// Allowed, and the compile stops before linking (`-c`, `-S`, `-E`, `-M`, `-MM`).
    Stop,
    /// Allowed if the value names no path (has no `/`): a file name without one stays in the
    /// compiler's working directory, inside the job root.
    NoPath,
    /// Allowed if the value is one of these.
    OneOf(&'static [&'static str]),
    /// Passed on to another program: each of its options (split at commas when joined, `-Wa,x,y`)
    /// must be allowed by this table, and none may name a path.
    Inner(&'static [Rule]),
    /// In an inner table: as on the compiler's own command line, with a joined value only.
    Outer,
    /// Refused: the note says why.
    Refuse,
}

#[derive(Debug)]
struct Rule {
    spelling: &'static str,
    value: Value,
    verdict: Verdict,
    /// What the flag is for, or (refused) what it does: "loads code into the compiler".
    note: &'static str,
}

const fn rule(spelling: &'static str, value: Value, verdict: Verdict, note: &'static str) -> Rule {
    Rule {
        spelling,
        value,
        verdict,
        note,
    }
}

use Value::{Either, Joined, Separate};
use Verdict::*;

const NONE: Value = Value::None;

/// The languages homcc compiles remotely, as `-x` names them.
const LANGUAGES: &[&str] = &[
    "c",
    "c++",
    "objective-c",
    "objective-c++",
    "assembler-with-cpp",
    "cpp-output",
    "c++-cpp-output",
    "objective-c-cpp-output",
    "objective-c++-cpp-output",
    "none",
];

const LINK: &str = "link only: inert, since homccd runs only commands that stop before linking";
const PROFILE: &str = "reads or writes profile or coverage files outside the job root";
const WRITES: &str = "writes a file that homcc does not bring back";
const PLUGIN: &str = "loads code into the compiler";

/// The compiler's own command line.
#[rustfmt::skip]
const RULES: &[Rule] = &[
    // What the compile produces.
    rule("-c", NONE, Stop, "stop at the object file"),
    rule("-S", NONE, Stop, "stop at the assembly file"),
    rule("-E", NONE, Stop, "preprocess only (the client keeps it local; harmless: stdout or -o)"),
    rule("-M", NONE, Stop, "dependencies only (to stdout or -o)"),
    rule("-MM", NONE, Stop, "dependencies only, without system headers"),
    rule("-objcmt", Joined, Refuse, "rewrites source files (clang's ObjC migrator)"),
    rule("-o", Either, Allow, "output, mapped into the job root"),
    rule("-x", Either, OneOf(LANGUAGES), "source language"),
    // Dependency files, written inside the job root (`-MF` is mapped).
    rule("-MD", NONE, Allow, "dependency file beside the output"),
    rule("-MMD", NONE, Allow, "dependency file beside the output, no system headers"),
    rule("-MF", Either, Allow, "dependency file, mapped into the job root"),
    rule("-MT", Either, Allow, "dependency target"),
    rule("-MQ", Either, Allow, "dependency target, quoted"),
    rule("-MP", NONE, Allow, "phony targets for headers"),
    rule("-MG", NONE, Allow, "missing headers are generated files"),
    // Macros and include paths, mapped into the job root.
    rule("-D", Either, Allow, "define a macro"),
    rule("-U", Either, Allow, "undefine a macro"),
    rule("-I", Either, Allow, "include dir"),
    rule("-isystem-after", Joined, Refuse, "names an include dir that homccd does not map"),
    rule("-isystem", Either, Allow, "system include dir"),
    rule("-iquote", Either, Allow, "quote include dir"),
    rule("-idirafter", Either, Allow, "include dir searched last"),
    rule("-include-pch", Joined, Refuse, "reads a precompiled header that homcc does not send"),
    rule("-include", Either, Allow, "forced include"),
    rule("-imacros", Either, Allow, "macros of a file"),
    rule("-iprefix", Either, Allow, "prefix for -iwithprefix"),
    rule("-iwithprefix", Joined, Refuse, "adds an include dir under a prefix (the compiler's own by default) that homccd cannot keep inside the job root"),
    rule("-isysroot", Either, Allow, "sysroot for headers"),
    rule("--sysroot=", Joined, Allow, "sysroot, mapped into the job root"),
    rule("--sysroot", Separate, Allow, "sysroot, mapped into the job root"),
    rule("-iplugindir", Joined, Refuse, "chooses where the compiler loads plugins from"),
    rule("-nostdinc", NONE, Allow, "no standard include dirs"),
    rule("-nostdinc++", NONE, Allow, "no standard C++ include dirs"),
    rule("-nostdlib", Joined, Allow, "-nostdlib, -nostdlib++, -nostdlibinc"),
    rule("-nobuiltininc", NONE, Allow, "no clang builtin include dir"),
    rule("-undef", NONE, Allow, "no predefined macros"),
    // Flags whose value has paths but names no file (before the -f rows that refuse).
    rule("-fuse-ld=", Joined, Allow, LINK),
    rule("-ffile-prefix-map=", Joined, Allow, "a string map; its old prefix is mapped"),
    rule("-fdebug-prefix-map=", Joined, Allow, "a string map; its old prefix is mapped"),
    rule("-fmacro-prefix-map=", Joined, Allow, "a string map; its old prefix is mapped"),
    rule("-fcoverage-prefix-map=", Joined, Allow, "a string map"),
    rule("-fdebug-compilation-dir=", Joined, Allow, "a string, not a file"),
    rule("-ffile-compilation-dir=", Joined, Allow, "a string, not a file"),
    rule("-fcoverage-compilation-dir=", Joined, Allow, "a string, not a file"),
    rule("-frandom-seed=", Joined, Allow, "a string (often the output path)"),
    rule("-finstrument-functions", Joined, Allow, "its exclude lists are names, not files"),
    // Programs, plugins and configuration the compiler would run or read.
    rule("-wrapper", Joined, Refuse, "runs the compiler's programs under another program"),
    rule("--wrapper", Joined, Refuse, "runs the compiler's programs under another program"),
    rule("-B", Either, Refuse, "changes where the compiler finds the programs it runs"),
    rule("-specs", Joined, Refuse, "reads a specs file that rewrites the compiler's commands"),
    rule("--specs", Joined, Refuse, "reads a specs file that rewrites the compiler's commands"),
    rule("--gcc-toolchain", Joined, Refuse, "chooses another compiler installation"),
    rule("-gcc-toolchain", Joined, Refuse, "chooses another compiler installation"),
    rule("--gcc-install-dir", Joined, Refuse, "chooses another compiler installation"),
    rule("--gcc-triple", Joined, Refuse, "chooses another compiler installation"),
    rule("-ccc-", Joined, Refuse, "changes the programs clang's driver runs"),
    rule("--config", Joined, Refuse, "reads a configuration file of more options"),
    rule("-fplugin", Joined, Refuse, PLUGIN),
    rule("-fpass-plugin", Joined, Refuse, PLUGIN),
    rule("-mllvm", Joined, Refuse, "passes options to LLVM, some of which write files"),
    rule("-fcompare-debug", Joined, Refuse, "runs a second compile with other options"),
    rule("-fmodule", Joined, Refuse, "uses module files, caches or mappers outside the job root"),
    rule("-fprebuilt-module-path", Joined, Refuse, "reads module files outside the job root"),
    // Files read or written beside the compile.
    rule("-fprofile-", Joined, Refuse, PROFILE),
    rule("-fauto-profile", Joined, Refuse, PROFILE),
    rule("-fcs-profile-generate", Joined, Refuse, PROFILE),
    rule("-fmemory-profile", Joined, Refuse, PROFILE),
    rule("-ftest-coverage", Joined, Refuse, PROFILE),
    rule("--coverage", Joined, Refuse, PROFILE),
    rule("-f*list=", Joined, Refuse, "reads a list file (sanitizer, XRay, ...)"),
    rule("-save-temps", Joined, Refuse, "writes intermediate files"),
    rule("--save-temps", Joined, Refuse, "writes intermediate files"),
    rule("-fdump-", Joined, Refuse, "writes dump files"),
    rule("-ftime-trace", Joined, Refuse, WRITES),
    rule("-fstack-usage", Joined, Refuse, WRITES),
    rule("-fcallgraph-info", Joined, Refuse, WRITES),
    rule("-fsave-optimization-record", Joined, Refuse, WRITES),
    rule("-foptimization-record-file", Joined, Refuse, WRITES),
    rule("-fopt-info*=", Joined, Refuse, WRITES),
    rule("-fproc-stat-report", Joined, Refuse, WRITES),
    rule("-fcrash-diagnostics-dir", Joined, Refuse, WRITES),
    rule("-fdiagnostics-add-output", Joined, Refuse, WRITES),
    rule("-fdiagnostics-set-output", Joined, Refuse, WRITES),
    rule("-fdeps-", Joined, Refuse, WRITES),
    rule("-aux-info", Joined, Refuse, WRITES),
    rule("-dumpdir", Joined, Refuse, "chooses where auxiliary files go"),
    rule("-dumpbase", Joined, Refuse, "chooses where auxiliary files go"),
    rule("-fself-test", Joined, Refuse, "reads the compiler's test files"),
    // Code generation and diagnostics.
    rule("-march=native", NONE, Refuse, "depends on the machine, not the client's"),
    rule("-mtune=native", NONE, Refuse, "depends on the machine, not the client's"),
    rule("-mcpu=native", NONE, Refuse, "depends on the machine, not the client's"),
    rule("-module-", Joined, Refuse, "writes module files outside the job root"),
    rule("-f", Joined, NoPath, "code generation, language, diagnostics (-fPIC, -fno-rtti, ...)"),
    rule("-m", Joined, NoPath, "machine flags (-m64, -march=x86-64-v3, ...)"),
    rule("-gen-", Joined, Refuse, "writes reproducers or compilation databases"),
    rule("-g", Joined, NoPath, "debug info (-g, -g3, -gdwarf-4, -gsplit-dwarf, ...)"),
    rule("-O", Joined, Allow, "optimisation level"),
    rule("-std=", Joined, Allow, "language standard"),
    rule("--std=", Joined, Allow, "language standard"),
    rule("-stdlib=", Joined, Allow, "C++ standard library"),
    rule("-ansi", NONE, Allow, "-std=c90 / c++98"),
    rule("-trigraphs", NONE, Allow, "trigraphs"),
    rule("-pedantic", Joined, Allow, "-pedantic, -pedantic-errors"),
    rule("-pthread", NONE, Allow, "POSIX threads"),
    rule("--param=", Joined, Allow, "optimiser parameter"),
    rule("--param", Separate, Allow, "optimiser parameter"),
    rule("--target=", Joined, Allow, "clang target"),
    rule("-target", Separate, Allow, "clang target"),
    rule("-arch", Separate, Allow, "Darwin architecture"),
    rule("-no-canonical-prefixes", NONE, Allow, "how the driver names its own programs"),
    rule("-Qunused-arguments", NONE, Allow, "no unused-argument warnings"),
    rule("-pipe", NONE, Allow, "pipes instead of temporary files"),
    rule("-w", NONE, Allow, "no warnings"),
    rule("-v", NONE, Allow, "verbose, to stderr"),
    rule("-H", NONE, Allow, "list headers, to stderr"),
    rule("-P", NONE, Allow, "no line markers (-E)"),
    rule("-C", NONE, Allow, "keep comments (-E)"),
    rule("-CC", NONE, Allow, "keep comments in macros (-E)"),
    rule("-dD", NONE, Allow, "print macros (-E)"),
    rule("-dM", NONE, Allow, "print macros (-E)"),
    rule("-dN", NONE, Allow, "print macro names (-E)"),
    rule("-dI", NONE, Allow, "print include directives (-E)"),
    rule("-dU", NONE, Allow, "print used macros (-E)"),
    // Options for the programs the driver runs.
    rule("-Wl,", Joined, Allow, LINK),
    rule("-Wa,", Joined, Inner(ASSEMBLER), "assembler options"),
    rule("-Wp,", Joined, Inner(PREPROCESSOR), "preprocessor options"),
    rule("-W", Joined, NoPath, "warnings (-Wall, -Werror=format, ...)"),
    rule("-Xclang", Separate, Inner(CLANG), "clang front-end option"),
    rule("-Xassembler", Separate, Inner(ASSEMBLER), "assembler option"),
    rule("-Xpreprocessor", Separate, Inner(PREPROCESSOR), "preprocessor option"),
    rule("-Xlinker", Separate, Allow, LINK),
    rule("-l", Either, Allow, LINK),
    rule("-L", Either, Allow, LINK),
    rule("-static", Joined, Allow, LINK),
    rule("-shared", Joined, Allow, LINK),
    rule("-pie", NONE, Allow, LINK),
    rule("-no-pie", NONE, Allow, LINK),
    rule("-rdynamic", NONE, Allow, LINK),
    rule("-nodefaultlibs", NONE, Allow, LINK),
    rule("-nostartfiles", NONE, Allow, LINK),
    rule("-rtlib=", Joined, Allow, LINK),
    rule("--rtlib=", Joined, Allow, LINK),
    rule("-unwindlib=", Joined, Allow, LINK),
    rule("--unwindlib=", Joined, Allow, LINK),
];

/// `-Xclang X`: clang's front end (cc1), which has many options that read or write files.
#[rustfmt::skip]
const CLANG: &[Rule] = &[
    rule("-load", Joined, Refuse, PLUGIN),
    rule("-plugin", Joined, Refuse, "runs a compiler plugin"),
    rule("-add-plugin", Joined, Refuse, "runs a compiler plugin"),
    rule("-disable-O0-optnone", NONE, Allow, "optimisable -O0 code"),
    rule("-disable-llvm-passes", NONE, Allow, "no LLVM passes"),
    rule("-disable-llvm-optzns", NONE, Allow, "no LLVM optimisations"),
    rule("-f", Joined, Outer, "as on the command line"),
    rule("-W", Joined, Outer, "as on the command line"),
    rule("-D", Joined, Outer, "as on the command line"),
    rule("-U", Joined, Outer, "as on the command line"),
];

/// `-Wa,X,Y`, `-Xassembler X`: options of `as` (and clang's integrated assembler).
#[rustfmt::skip]
const ASSEMBLER: &[Rule] = &[
    rule("-a", Joined, Refuse, "writes an assembler listing file"),
    rule("--MD", Joined, Refuse, "writes a dependency file"),
    rule("-I", Joined, Refuse, "names an include dir that homccd does not map"),
    rule("-o", Joined, Refuse, "names the assembler's output"),
    rule("-m", Joined, Allow, "machine flags (-mrelax-relocations=no, -mbig-obj)"),
    rule("-g", Joined, Allow, "debug info (-gdwarf-5)"),
    rule("--gdwarf", Joined, Allow, "debug info"),
    rule("--gen-debug", NONE, Allow, "debug info"),
    rule("--noexecstack", NONE, Allow, "non-executable stack"),
    rule("--execstack", NONE, Allow, "executable stack"),
    rule("--fatal-warnings", NONE, Allow, "warnings are errors"),
    rule("--warn", NONE, Allow, "warnings"),
    rule("--no-warn", NONE, Allow, "no warnings"),
    rule("-W", NONE, Allow, "no warnings"),
    rule("--compress-debug-sections", Joined, Allow, "compressed debug info"),
    rule("--nocompress-debug-sections", NONE, Allow, "uncompressed debug info"),
    rule("--generate-missing-build-notes=", Joined, Allow, "build notes"),
    rule("--64", NONE, Allow, "x86-64"),
    rule("--32", NONE, Allow, "i386"),
    rule("--x32", NONE, Allow, "x32"),
    rule("-EL", NONE, Allow, "little endian"),
    rule("-EB", NONE, Allow, "big endian"),
];

/// `-Wp,X,Y`, `-Xpreprocessor X`: options of the preprocessor (gcc's cc1), given as they are.
#[rustfmt::skip]
const PREPROCESSOR: &[Rule] = &[
    rule("-M", Joined, Refuse, "writes a dependency file at a path homccd does not map (homcc writes them on the client)"),
    rule("-D", Joined, Outer, "as on the command line"),
    rule("-U", Joined, Outer, "as on the command line"),
    rule("-P", NONE, Allow, "no line markers"),
    rule("-C", NONE, Allow, "keep comments"),
    rule("-CC", NONE, Allow, "keep comments in macros"),
    rule("-dD", NONE, Allow, "print macros"),
    rule("-dM", NONE, Allow, "print macros"),
    rule("-dN", NONE, Allow, "print macro names"),
    rule("-dI", NONE, Allow, "print include directives"),
    rule("-dU", NONE, Allow, "print used macros"),
];

/// Checks a client's compiler arguments: every flag must be allowed, and the command must stop
/// before linking. Arguments that are not flags are inputs, which `args` keeps in the job root.
pub fn check(args: &[OsString]) -> Result<(), Forbidden> {
    let mut stops = false;
    let mut rest = args.iter().map(|a| a.as_bytes());
    while let Some(arg) = rest.next() {
        if arg.starts_with(b"@") {
            return Err(response_file(arg));
        }
        if arg.starts_with(b"-") {
            stops |= check_flag(arg, RULES, Some(&mut rest))?;
        }
    }
    if !stops {
        return Err(Forbidden::Links);
    }
    Ok(())
}

/// Checks one flag against `table`, taking a separate value from `next` (none is left for the
/// options inside `-Xclang` and `-Wa,`); true if it stops the compile before linking.
fn check_flag<'a>(
    arg: &'a [u8],
    table: &'static [Rule],
    next: Option<&mut dyn Iterator<Item = &'a [u8]>>,
) -> Result<bool, Forbidden> {
    let shown = || show(arg);
    let rule = table
        .iter()
        .find(|r| r.matches(arg))
        .ok_or_else(|| Forbidden::Unknown { arg: shown() })?;
    if let Refuse = rule.verdict {
        return Err(Forbidden::Refused {
            arg: shown(),
            why: rule.note,
        });
    }
    let joined = &arg[rule.spelling.len().min(arg.len())..];
    // The compiler reads `@file` in any argument, also in a flag's separate value.
    let take = || match next.and_then(|n| n.next()) {
        None => Err(Forbidden::MissingValue { arg: shown() }),
        Some(value) if value.starts_with(b"@") => Err(response_file(value)),
        Some(value) => Ok(value),
    };
    let value: &[u8] = match rule.value {
        Value::None => b"",
        Joined => joined,
        Separate => take()?,
        // A joined value that starts with `-` is more likely another flag (`-isystem-after`).
        Either if joined.starts_with(b"-") => return Err(Forbidden::Unknown { arg: shown() }),
        Either if !joined.is_empty() => joined,
        Either => take()?,
    };
    match rule.verdict {
        Stop => return Ok(true),
        Allow | Refuse => {}
        NoPath if value.contains(&b'/') => return Err(Forbidden::Path { arg: shown() }),
        NoPath => {}
        OneOf(allowed) if !allowed.iter().any(|a| a.as_bytes() == value) => {
            return Err(Forbidden::Value {
                arg: format!("{} {}", rule.spelling, show(value)),
                allowed: allowed.join(", "),
            })
        }
        OneOf(_) => {}
        Inner(inner) => {
            let (items, sep): (Vec<&[u8]>, &str) = match rule.value {
                Joined => (value.split(|b| *b == b',').collect(), ""),
                _ => (vec![value], " "),
            };
            for item in items.into_iter().filter(|i| !i.is_empty()) {
                check_inner(item, inner).map_err(|e| e.within(rule.spelling, sep))?;
            }
        }
        Outer => {
            check_flag(arg, RULES, None)?;
        }
    }
    Ok(false)
}

/// One option passed on to another program: a flag of `table`, naming no path.
fn check_inner(item: &[u8], table: &'static [Rule]) -> Result<(), Forbidden> {
    if item.starts_with(b"@") {
        return Err(response_file(item));
    }
    if !item.starts_with(b"-") {
        return Err(Forbidden::Unknown { arg: show(item) });
    }
    if item.contains(&b'/') {
        return Err(Forbidden::Path { arg: show(item) });
    }
    check_flag(item, table, None).map(drop)
}

fn response_file(arg: &[u8]) -> Forbidden {
    Forbidden::Refused {
        arg: show(arg),
        why: "reads a response file on the server (homcc expands @file on the client)",
    }
}

impl Rule {
    fn matches(&self, arg: &[u8]) -> bool {
        let spelling = self.spelling.as_bytes();
        match self.value {
            Value::None | Separate => arg == spelling,
            Joined | Either => match self.spelling.split_once('*') {
                Some((head, tail)) => arg
                    .strip_prefix(head.as_bytes())
                    .is_some_and(|rest| rest.windows(tail.len()).any(|w| w == tail.as_bytes())),
                None => arg.starts_with(spelling),
            },
        }
    }
}

impl Forbidden {
    /// The same refusal, naming the option as it was passed on (`-Xclang -load`, `-Wa,-a=x`).
    fn within(self, outer: &str, sep: &str) -> Forbidden {
        let name = |arg: String| format!("{outer}{sep}{arg}");
        match self {
            Forbidden::Refused { arg, why } => Forbidden::Refused {
                arg: name(arg),
                why,
            },
            Forbidden::Unknown { arg } => Forbidden::Unknown { arg: name(arg) },
            Forbidden::Path { arg } => Forbidden::Path { arg: name(arg) },
            Forbidden::Value { arg, allowed } => Forbidden::Value {
                arg: name(arg),
                allowed,
            },
            Forbidden::MissingValue { arg } => Forbidden::MissingValue { arg: name(arg) },
            Forbidden::Links => Forbidden::Links,
        }
    }
}

/// An argument as a message shows it: one line, at most 100 characters.
fn show(arg: &[u8]) -> String {
    let text = String::from_utf8_lossy(arg);
    let mut shown: String = text
        .chars()
        .take(100)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > 100 {
        shown.push_str("...");
    }
    shown
}

#[cfg(test)]
mod tests;
