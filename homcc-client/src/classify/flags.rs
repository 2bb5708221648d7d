//! What each flag of homcc-proto's table (`homcc_proto::flags`, which says how its value is
//! attached and what homccd does with it) means for homcc: a [`Role`] for the rows that are
//! more to homcc than text passed through, and [`role`] for any row.

use homcc_proto::flags::{Rule, Verdict};

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
    /// Cannot be made identical remotely (yet), or not worth sending: runs locally.
    Local(&'static str),
    /// homccd refuses it (its row's verdict; the note says why): runs locally, like `Local`.
    Refused(&'static str),
    /// Passed through unchanged, to the scan and the server.
    Pass,
    /// An include search directory (`-I`, `-isystem`, `-iquote`, `-idirafter`): passed through,
    /// and the job notes it (the server creates those that exist here).
    IncludeDir,
}

use Role::*;

/// The rows of homcc-proto's table that mean more than [`Pass`], by their spelling there (a test
/// holds that each names a row).
pub const ROLES: &[(&str, Role)] = &[
    ("-c", CompileOnly),
    ("-S", AssemblyOnly),
    ("-o", Output),
    ("-x", Language),
    ("-E", Local("preprocessing only (-E)")),
    ("-M", Local("dependency output only (-M)")),
    ("-MM", Local("dependency output only (-MM)")),
    ("-MD", DepWhileCompiling),
    ("-MMD", DepWhileCompiling),
    ("-MF", DepFile),
    ("-MT", DepShape),
    ("-MQ", DepShape),
    ("-MP", DepShape),
    (
        "-MG",
        Local("-MG treats missing headers as generated files"),
    ),
    ("-Wp,", PreprocessorPassThrough),
    ("-gsplit-dwarf", SplitDwarf),
    ("--sysroot=", Target),
    ("--sysroot", Target),
    ("-isysroot", Target),
    ("--target=", Target),
    ("-target", Target),
    ("-nostdinc", Target),
    ("-nostdinc++", Target),
    ("-nostdlibinc", Target),
    ("-ffreestanding", Target),
    ("-fhosted", Target),
    ("-undef", Target),
    ("-stdlib=", Target),
    ("-m", Target),
    ("-fplugin", Local("compiler plugins are not sent")),
    ("-fsyntax-only", Local("-fsyntax-only writes nothing")),
    ("-v", Local("verbose compiler run (-v)")),
    ("-###", Local("-### only prints commands")),
    ("-I", IncludeDir),
    ("-isystem", IncludeDir),
    ("-iquote", IncludeDir),
    ("-idirafter", IncludeDir),
    ("-l", LinkOnly),
    ("-L", LinkOnly),
    ("-Wl,", LinkOnly),
    ("-Xlinker", LinkOnly),
];

/// What the flag of `rule` means for homcc: its entry in [`ROLES`], else `Refused` with the
/// row's note if homccd refuses it, else `Pass`.
pub fn role(rule: &Rule) -> Role {
    match ROLES
        .iter()
        .find(|(spelling, _)| *spelling == rule.spelling)
    {
        Some((_, role)) => *role,
        None if rule.verdict == Verdict::Refuse => Refused(rule.note),
        None => Pass,
    }
}
