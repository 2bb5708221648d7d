//! The flag table of gcc and clang arguments: each flag, how its value is attached, and what
//! it means for homcc; and the matcher that finds a flag's entry.

/// How a flag's value is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
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
pub enum Role {
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
    /// homccd's argument policy refuses it (a cross-check test holds the two tables to that):
    /// runs locally, like `Local`.
    Refused(&'static str),
    /// Passed through unchanged, to the scan and the server.
    Pass,
    /// An include search directory (`-I`, `-isystem`, `-iquote`, `-idirafter`): passed through,
    /// and the job notes it (the server creates those that exist here).
    IncludeDir,
}

#[derive(Debug)]
pub struct Flag {
    pub name: &'static str,
    pub takes: Takes,
    pub role: Role,
}

const fn flag(name: &'static str, takes: Takes, role: Role) -> Flag {
    Flag { name, takes, role }
}

use Role::*;
use Takes::*;

/// Specific entries before general prefixes (`-march=native` before `-m`).
pub const FLAGS: &[Flag] = &[
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
    // What homccd's argument policy refuses (homcc_proto::policy, which `classify` checks too):
    // listed here for their values' arity, so that the walk reads the rest of the command right.
    flag(
        "-fstack-usage",
        Nothing,
        Refused("-fstack-usage writes a .su file"),
    ),
    flag(
        "-fcallgraph-info",
        Joined,
        Refused("-fcallgraph-info writes a .ci file"),
    ),
    flag(
        "-ftime-trace",
        Joined,
        Refused("-ftime-trace writes a trace file"),
    ),
    flag(
        "-fsave-optimization-record",
        Joined,
        Refused("optimization records are written beside the build"),
    ),
    flag(
        "-fmodule",
        Joined,
        Refused("modules read and write module caches"),
    ),
    flag(
        "-fcompare-debug",
        Joined,
        Refused("-fcompare-debug runs the compiler twice"),
    ),
    flag(
        "-wrapper",
        NextOrJoined,
        Refused("-wrapper runs the compiler through a program"),
    ),
    flag(
        "--gcc-toolchain",
        NextOrJoined,
        Refused("--gcc-toolchain picks another gcc"),
    ),
    flag("-ccc-", Joined, Refused("clang driver debugging flags")),
    flag(
        "--config",
        NextOrJoined,
        Refused("--config reads a clang configuration file"),
    ),
    flag("-mllvm", Next, Refused("-mllvm passes options to LLVM")),
    flag("-fplugin", Joined, Refused("compiler plugins")),
    flag(
        "-fsyntax-only",
        Nothing,
        Local("-fsyntax-only writes nothing"),
    ),
    flag("-v", Nothing, Local("verbose compiler run (-v)")),
    flag("-###", Nothing, Local("-### only prints commands")),
    flag("-I", NextOrJoined, IncludeDir),
    flag("-isystem", NextOrJoined, IncludeDir),
    flag("-iquote", NextOrJoined, IncludeDir),
    flag("-idirafter", NextOrJoined, IncludeDir),
    flag("-include", NextOrJoined, Pass),
    flag("-imacros", NextOrJoined, Pass),
    flag("-iprefix", NextOrJoined, Pass),
    flag(
        "-iwithprefix",
        NextOrJoined,
        Local("-iwithprefix dirs hang off the compiler's own directory"),
    ),
    flag(
        "-iwithprefixbefore",
        NextOrJoined,
        Local("-iwithprefix dirs hang off the compiler's own directory"),
    ),
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

/// Finds the table entry for `arg`: exact names first, then joined prefixes; with the value.
pub(super) fn lookup(arg: &[u8]) -> Option<(&'static Flag, Option<&[u8]>)> {
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
