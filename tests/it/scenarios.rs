//! The scenario suite: command lines run twice in the same directory, once with the plain
//! compiler and once through homcc against a real homccd, each run in a fresh copy of a template
//! project; exit code, stdout, stderr and every file created, changed or removed must be identical
//! byte for byte, and each scenario states whether it must run remotely (how many compiles) or
//! locally (the server sees no connection).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use homcc_tests::{bin, isolate, wait_for_or, Counting, TestServer};

/// Where a scenario's compiles must run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// This many remote compiles, each with the compiler's verdict (`exit N`) on the server.
    Remote(usize),
    /// No connection to the server at all.
    Local,
    /// This many remote compiles from the include closure, each failing with the compiler's
    /// verdict, then a local compile: the compiler's own scan failed too (a header that is
    /// nowhere), and only a local compile says why as the compiler does.
    RemoteThenLocal(usize),
}

use Expect::*;

/// One command line. In `args`, `{dir}` is the absolute working directory and `{outside}` an
/// absolute directory beside it (outside the working directory), both fresh for each run.
struct Scenario {
    name: &'static str,
    compiler: &'static str,
    args: &'static [&'static str],
    expect: Expect,
    /// Set for both runs.
    env: &'static [(&'static str, &'static str)],
}

const fn sc(
    name: &'static str,
    compiler: &'static str,
    args: &'static [&'static str],
    expect: Expect,
) -> Scenario {
    Scenario {
        name,
        compiler,
        args,
        expect,
        env: &[],
    }
}

impl Scenario {
    const fn env(self, env: &'static [(&'static str, &'static str)]) -> Scenario {
        Scenario { env, ..self }
    }

    /// Whether the compile writes a dependency file (any form).
    fn writes_depfile(&self) -> bool {
        self.args.iter().any(|a| {
            ["-MD", "-MMD"].contains(a) || a.starts_with("-Wp,-MD,") || a.starts_with("-Wp,-MMD,")
        })
    }
}

/// `__DATE__` and `__TIME__` from a fixed time, identical for both runs.
const EPOCH: &[(&str, &str)] = &[("SOURCE_DATE_EPOCH", "1700000000")];

#[rustfmt::skip]
const OUTPUTS: &[Scenario] = &[
    sc("o_separate", "gcc", &["-c", "a.c", "-o", "a.o"], Remote(1)),
    sc("o_joined", "gcc", &["-c", "a.c", "-oa2.o"], Remote(1)),
    sc("o_default_name", "gcc", &["-c", "a.c"], Remote(1)),
    sc("o_default_from_subdir", "gcc", &["-c", "src/s.c"], Remote(1)),
    sc("o_suffix_obj", "gcc", &["-c", "a.c", "-o", "a.obj"], Remote(1)),
    sc("o_no_suffix", "clang", &["-c", "a.c", "-o", "aobject"], Remote(1)),
    sc("o_subdir", "gcc", &["-g", "-c", "a.c", "-o", "obj/a.o"], Remote(1)),
    sc("o_assembly_in_subdir", "clang", &["-S", "a.c", "-o", "obj/a.s"], Remote(1)),
    sc("o_outside_absolute", "gcc", &["-g", "-c", "a.c", "-o", "{outside}/a.o"], Remote(1)),
    sc("o_overwrites_existing", "gcc", &["-c", "a.c", "-o", "existing.o"], Remote(1)),
    // A failed compile and an existing output: gcc keeps it when cc1 fails (`as` never ran),
    // clang removes it, gcc -S removes it (cc1 was writing it).
    sc("o_stale_kept_on_error_gcc", "gcc", &["-c", "syntax.c", "-o", "existing.o"], Remote(1)),
    sc("o_stale_removed_on_error_clang", "clang", &["-c", "syntax.c", "-o", "existing.o"], Remote(1)),
    sc("o_stale_assembly_on_error_gcc", "gcc", &["-S", "syntax.c", "-o", "existing.s"], Remote(1)),
    sc("o_dev_null", "gcc", &["-c", "a.c", "-o", "/dev/null"], Local),
    sc("o_missing_directory", "gcc", &["-c", "a.c", "-o", "nodir/a.o"], Local),
    sc("o_stdout", "gcc", &["-c", "a.c", "-o", "-"], Local),
    sc("o_symlink", "gcc", &["-c", "a.c", "-o", "link.o"], Local),
];

#[rustfmt::skip]
const DEPENDENCIES: &[Scenario] = &[
    sc("dep_md", "gcc", &["-c", "a.c", "-MD"], Remote(1)),
    sc("dep_mmd_subdir", "gcc", &["-c", "a.c", "-MMD", "-o", "obj/a.o"], Remote(1)),
    sc("dep_md_mf", "gcc", &["-c", "a.c", "-MD", "-MF", "deps.d", "-o", "a.o"], Remote(1)),
    sc("dep_mmd_mf_joined", "clang", &["-c", "a.c", "-MMD", "-MFobj/joined.d"], Remote(1)),
    sc("dep_mt", "gcc", &["-c", "a.c", "-MD", "-MT", "custom-target", "-o", "a.o"], Remote(1)),
    sc("dep_mq", "gcc", &["-c", "a.c", "-MD", "-MQ", "$(OBJ)/a.o"], Remote(1)),
    sc("dep_mp", "gcc", &["-c", "a.c", "-MMD", "-MP"], Remote(1)),
    sc("dep_clang_md_mf_mt_mp", "clang", &["-c", "a.c", "-MD", "-MF", "obj/c.d", "-MT", "x", "-MP", "-o", "c.o"], Remote(1)),
    sc("dep_md_space_name", "gcc", &["-c", "sp ace.c", "-MD"], Remote(1)),
    sc("dep_md_outside", "g++", &["-c", "c.cpp", "-MD", "-o", "{outside}/c.o"], Remote(1)),
    // -MMD leaves out system headers, which the compile still needs, here sysh.h from -isystem.
    sc("dep_mmd_isystem", "gcc", &["-iquote", "quote", "-isystem", "sys", "-c", "both.c", "-MMD", "-o", "bm.o"], Remote(1)),
    sc("dep_mmd_forced", "gcc", &["-include", "forced.h", "-imacros", "macros.h", "-MMD", "-c", "forced.c", "-o", "fm.o"], Remote(1)),
    sc("dep_mmd_forced_clang", "clang", &["-include", "forced.h", "-imacros", "macros.h", "-MMD", "-c", "forced.c", "-o", "fc.o"], Remote(1)),
    // Flags that shape only -E's output, which the scan reads: no effect on the compile.
    sc("dep_mmd_output_shapes", "gcc", &["-P", "-fdirectives-only", "-MMD", "-c", "a.c", "-o", "ps.o"], Remote(1)),
    sc("dep_mmd_gxx", "g++", &["-O2", "-c", "c.cpp", "-MMD", "-MP", "-o", "cm.o"], Remote(1)),
    sc("dep_mg", "gcc", &["-c", "a.c", "-MD", "-MG"], Local),
    sc("dep_wp_md", "gcc", &["-c", "a.c", "-Wp,-MD,a.pp.d"], Remote(1)),
    sc("dep_wp_mmd_kbuild", "gcc", &["-Wp,-MMD,src/.wp.o.d", "-c", "a.c", "-o", "src/wp.o"], Remote(1)),
    sc("dep_wp_md_clang", "clang", &["-Wp,-MD,.wpc.o.d", "-c", "a.c", "-o", "src/wpc.o"], Remote(1)),
    sc("dep_wp_other", "gcc", &["-c", "a.c", "-Wp,-DWP=1"], Local),
    sc("dep_md_in_link", "gcc", &["-MD", "a.c", "-o", "app"], Local),
    sc("dep_m_only", "gcc", &["-M", "a.c"], Local),
    sc("dep_mm_mf_only", "gcc", &["-MM", "a.c", "-MF", "only.d"], Local),
];

#[rustfmt::skip]
const DIAGNOSTICS: &[Scenario] = &[
    sc("warn_gcc", "gcc", &["-Wall", "-Wextra", "-c", "warn.c"], Remote(1)),
    sc("warn_clang", "clang", &["-Wall", "-Wextra", "-c", "warn.c"], Remote(1)),
    sc("warn_gxx_in_header", "g++", &["-Wall", "-Iinc", "-c", "warnhdr.cpp"], Remote(1)),
    sc("werror_gcc", "gcc", &["-Wall", "-Werror", "-c", "warn.c"], Remote(1)),
    sc("werror_clang", "clang", &["-Wall", "-Werror=unused-variable", "-c", "warn.c"], Remote(1)),
    sc("syntax_error_gcc", "gcc", &["-c", "syntax.c"], Remote(1)),
    sc("syntax_error_clangxx", "clang++", &["-c", "-x", "c++", "syntax.c"], Remote(1)),
    sc("missing_header_gcc", "gcc", &["-c", "missing.c"], RemoteThenLocal(1)),
    sc("missing_header_clang", "clang", &["-c", "missing.c"], RemoteThenLocal(1)),
    sc("missing_header_scan_gcc", "gcc", &["-c", "missing.c"], Local).env(&[("HOMCC_NO_INCLUDE_CLOSURE", "1")]),
    sc("header_error_gcc", "gcc", &["-Iinc", "-c", "hdrerr.c"], Remote(1)),
    sc("header_error_clang", "clang", &["-Iinc", "-c", "hdrerr.c"], Remote(1)),
    sc("color_always", "gcc", &["-fdiagnostics-color=always", "-Wall", "-c", "warn.c"], Remote(1)),
    sc("locale_c_utf8", "gcc", &["-Wall", "-c", "warn.c"], Remote(1)).env(&[("LC_ALL", "C.UTF-8")]),
    sc("locale_c", "g++", &["-Wall", "-Iinc", "-c", "warnhdr.cpp"], Remote(1)).env(&[("LC_ALL", "C")]),
    sc("pedantic_empty", "gcc", &["-pedantic", "-c", "empty.c"], Remote(1)),
    sc("syntax_only", "gcc", &["-fsyntax-only", "-Wall", "warn.c"], Local),
];

#[rustfmt::skip]
const PREPROCESSOR: &[Scenario] = &[
    // The preprocessor's environment: CPATH travels as -I flags after the command's own; the
    // variables homcc does not reproduce remotely make the compile local.
    sc("env_cpath", "gcc", &["-c", "envinc.c"], Remote(1)).env(&[("CPATH", "envdir")]),
    sc("env_cpath_clang_md", "clang", &["-MD", "-c", "envinc.c", "-o", "envinc_c.o"], Remote(1)).env(&[("CPATH", "nothing_here::envdir")]),
    sc("env_cpath_after_i", "gcc", &["-Ienvdir2", "-MMD", "-c", "envinc.c", "-o", "envinc_i.o"], Remote(1)).env(&[("CPATH", "envdir")]),
    sc("env_c_include_path", "gcc", &["-c", "envinc.c", "-o", "envinc_s.o"], Local).env(&[("C_INCLUDE_PATH", "envdir")]),
    sc("env_dependencies_output", "gcc", &["-c", "a.c", "-o", "dep_env.o"], Local).env(&[("DEPENDENCIES_OUTPUT", "env.d")]),
    sc("env_sunpro_dependencies", "gcc", &["-c", "a.c", "-o", "sun_env.o"], Local).env(&[("SUNPRO_DEPENDENCIES", "sun.d sun_env.o")]),
    sc("define_spaces_quotes", "gcc", &["-DMSG=\"hello world\"", "-c", "defs.c"], Remote(1)),
    sc("define_separate_undef", "clang", &["-D", "GONE", "-D", "MSG=\"it's, \\\"quoted\\\"\"", "-UGONE", "-c", "defs.c"], Remote(1)),
    sc("include_forced", "gcc", &["-include", "forced.h", "-c", "forced.c"], Remote(1)),
    sc("include_joined", "gcc", &["-includeforced.h", "-c", "forced.c"], Remote(1)),
    sc("imacros", "gcc", &["-imacros", "macros.h", "-c", "imac.c"], Remote(1)),
    sc("imacros_clang", "clang", &["-imacros", "macros.h", "-c", "imac.c"], Remote(1)),
    sc("iquote", "gcc", &["-iquote", "quote", "-c", "iq.c"], Remote(1)),
    sc("idirafter", "clang", &["-idirafter", "after", "-c", "ida.c"], Remote(1)),
    sc("isystem", "gcc", &["-Wall", "-isystem", "sys", "-c", "isys.c"], Remote(1)),
    sc("iquote_isystem_joined", "clang", &["-Wall", "-iquotequote", "-isystemsys", "-c", "both.c"], Remote(1)),
    sc("include_dir_outside", "gcc", &["-I{outside}/inc", "-c", "useout.c"], Remote(1)),
    sc("include_outside_absolute", "gcc", &["-include", "{outside}/inc/o.h", "-c", "needs_outside.c"], Remote(1)),
    sc("sysroot_relative", "gcc", &["--sysroot=sysroot", "-ffreestanding", "-c", "fs.c"], Remote(1)),
    // The same command in another directory: gcc makes the relative sysroot's include dir
    // absolute, so what homcc learnt about the compiler in the first directory does not hold here.
    sc("sysroot_relative_other_dir", "gcc", &["--sysroot=sysroot", "-ffreestanding", "-c", "fs.c", "-o", "fs2.o"], Remote(1)),
    sc("sysroot_absolute", "clang", &["--sysroot", "{dir}/sysroot", "-ffreestanding", "-c", "fs.c"], Remote(1)),
    sc("computed_include", "gcc", &["-c", "computed.c"], Remote(1)),
    sc("file_macros_gcc", "gcc", &["-g", "-c", "file.c"], Remote(1)).env(EPOCH),
    // clang 14 ignores SOURCE_DATE_EPOCH: its __DATE__ and __TIME__ would differ whenever the two
    // compiles fall in different seconds, so they are given.
    sc("file_macros_clang_s", "clang", &["-S", "-Wno-builtin-macro-redefined", "-D__DATE__=\"Nov 14 2023\"", "-D__TIME__=\"22:13:20\"", "file.c"], Remote(1)).env(EPOCH),
    // The user's map must win over the server's own map of its job root.
    sc("macro_prefix_map", "gcc", &["-fmacro-prefix-map={dir}/=", "-c", "{dir}/file.c", "-o", "mpm.o"], Remote(1)).env(EPOCH),
    sc("empty_source", "gcc", &["-c", "empty.c"], Remote(1)),
];

#[rustfmt::skip]
const PATHS: &[Scenario] = &[
    sc("name_space", "gcc", &["-g", "-c", "sp ace.c"], Remote(1)),
    sc("name_comma", "gcc", &["-c", "com,ma.c"], Remote(1)),
    sc("name_unicode", "gcc", &["-g", "-c", "ü.c"], Remote(1)),
    sc("name_unicode_clang", "clang", &["-g", "-c", "ü.c", "-o", "ü-clang.o"], Remote(1)),
    sc("source_absolute", "gcc", &["-g", "-c", "{dir}/a.c", "-o", "abs.o"], Remote(1)),
    sc("source_dotdot", "gcc", &["-g", "-c", "../work/a.c", "-o", "up.o"], Remote(1)),
    sc("source_outside_dotdot", "clang", &["-g", "-c", "../outside/abs.c"], Remote(1)),
    sc("file_prefix_map", "gcc", &["-g", "-ffile-prefix-map={dir}=.", "-c", "{dir}/a.c", "-o", "fpm.o"], Remote(1)),
    sc("file_prefix_map_clang", "clang", &["-g", "-ffile-prefix-map={dir}=.", "-c", "{dir}/a.c", "-o", "fpm.o"], Remote(1)),
    sc("debug_prefix_map_gcc", "gcc", &["-g", "-fdebug-prefix-map={dir}=/src", "-c", "a.c"], Remote(1)),
    sc("debug_prefix_map_clang", "clang", &["-g", "-fdebug-prefix-map={dir}=/src", "-c", "a.c"], Remote(1)),
    sc("x_c_on_txt", "gcc", &["-x", "c", "-c", "code.txt"], Remote(1)),
    sc("x_cxx_on_c", "gcc", &["-x", "c++", "-c", "cxx.c"], Remote(1)),
    // A C++ driver compiles a `.c` file as C++.
    sc("gxx_on_c", "g++", &["-c", "cxx.c", "-o", "gxx.o"], Remote(1)),
    sc("clangxx_on_c", "clang++", &["-c", "cxx.c", "-o", "clangxx.o"], Remote(1)),
];

/// The only group with the 10 MB source in its template.
#[rustfmt::skip]
const BIG: &[Scenario] = &[
    sc("big_10mb_gcc", "gcc", &["-O0", "-c", "big.c"], Remote(1)),
    sc("big_10mb_clang", "clang", &["-O0", "-c", "big.c", "-o", "bigc.o"], Remote(1)),
];

#[rustfmt::skip]
const BUILDS: &[Scenario] = &[
    sc("s_default", "gcc", &["-S", "a.c"], Remote(1)),
    sc("s_output", "clang", &["-O2", "-S", "a.c", "-o", "out.s"], Remote(1)),
    sc("s_gxx", "g++", &["-O2", "-S", "c.cpp"], Remote(1)),
    sc("s_with_c", "gcc", &["-c", "-S", "a.c", "-MD"], Remote(1)),
    sc("multi_c", "gcc", &["-c", "a.c", "b.c"], Remote(2)),
    sc("multi_with_error", "gcc", &["-c", "a.c", "syntax.c", "b.c"], Remote(3)),
    sc("multi_x_then_none", "gcc", &["-c", "-x", "c", "code.txt", "-x", "none", "b.c"], Remote(2)),
    sc("multi_clang_md", "clang", &["-Wall", "-c", "a.c", "warn.c", "-MD"], Remote(2)),
    sc("multi_with_o", "gcc", &["-c", "a.c", "b.c", "-o", "x.o"], Local),
    sc("linker_flags_with_c_gcc", "gcc", &["-c", "a.c", "-lm", "-Wl,-O1"], Remote(1)),
    sc("linker_flags_with_c_clang", "clang", &["-c", "a.c", "-lm", "-L/usr/lib", "-Wl,-O1", "-Xlinker", "--as-needed"], Remote(1)),
    sc("link_one", "gcc", &["a.c", "-o", "app"], Remote(1)),
    sc("link_default_a_out", "gcc", &["a.c"], Remote(1)),
    sc("link_output_subdir", "gcc", &["a.c", "-o", "obj/app"], Remote(1)),
    sc("link_two_lm", "gcc", &["-O2", "main.c", "b.c", "-o", "app", "-lm"], Remote(2)),
    sc("link_flto", "gcc", &["-O2", "-flto", "main.c", "b.c", "-o", "app", "-lm"], Remote(2)),
    sc("link_source_and_object", "gcc", &["main.c", "b.o", "-o", "app", "-lm"], Remote(1)),
    sc("link_gxx_mixed", "g++", &["-O2", "cmain.cpp", "-x", "c", "b.c", "-x", "none", "-o", "app"], Remote(2)),
    sc("link_clang", "clang", &["main.c", "b.c", "-o", "app", "-lm"], Remote(2)),
    sc("link_objects_only", "gcc", &["main.o", "b.o", "-o", "app", "-lm"], Local),
];

#[rustfmt::skip]
const NAMES: &[Scenario] = &[
    sc("cc_gcc", "gcc", &["-O2", "-g", "-c", "a.c", "-o", "out.o"], Remote(1)),
    sc("cc_gxx", "g++", &["-O2", "-g", "-c", "c.cpp", "-o", "out.o"], Remote(1)),
    sc("cc_cc", "cc", &["-O2", "-g", "-c", "a.c", "-o", "out.o"], Remote(1)),
    sc("cc_cxx", "c++", &["-O2", "-g", "-c", "c.cpp", "-o", "out.o"], Remote(1)),
    sc("cc_gcc_12", "gcc-12", &["-O2", "-g", "-c", "a.c", "-o", "out.o"], Remote(1)),
    sc("cc_triple_gcc_12", "x86_64-linux-gnu-gcc-12", &["-O2", "-g", "-c", "a.c", "-o", "out.o"], Remote(1)),
    sc("cc_clang", "clang", &["-O2", "-g", "-c", "a.c", "-o", "out.o"], Remote(1)),
    sc("cc_clangxx", "clang++", &["-O2", "-g", "-c", "c.cpp", "-o", "out.o"], Remote(1)),
    sc("cc_clang_14", "clang-14", &["-O2", "-g", "-c", "a.c", "-o", "out.o"], Remote(1)),
    sc("cc_abs_clangxx_14", "/usr/bin/clang++-14", &["-O2", "-g", "-c", "c.cpp", "-o", "out.o"], Remote(1)),
    sc("rsp_nested_gcc", "gcc", &["@all.rsp", "-g"], Remote(1)),
    sc("rsp_nested_clang", "clang", &["@all.rsp", "-g"], Remote(1)),
    sc("rsp_missing", "gcc", &["-c", "@missing.rsp"], Local),
    sc("rsp_nested_relative_to_file", "gcc", &["@rsp/outer.rsp"], Local),
];

#[rustfmt::skip]
const LOCAL_FORMS: &[Scenario] = &[
    sc("asm_with_cpp", "gcc", &["-c", "asm.S"], Remote(1)),
    sc("missing_include_dirs_warning", "gcc", &["-Wmissing-include-dirs", "-Iunused", "-Inot_there", "-c", "a.c", "-o", "mid.o"], Remote(1)),
    sc("objc_clang", "clang", &["-Wall", "-c", "objc.m", "-o", "objc.o"], Remote(1)),
    sc("objcxx_clang", "clang++", &["-O2", "-c", "objcxx.mm", "-o", "objcxx.o"], Remote(1)),
    sc("objc_gcc_without_cc1obj", "gcc", &["-c", "objc.m", "-o", "objc_gcc.o"], Local),
    sc("asm_with_cpp_g", "gcc", &["-g", "-c", "asm.S", "-o", "asm_g.o"], Remote(1)),
    sc("asm_with_cpp_clang", "clang", &["-g", "-c", "asm.S", "-o", "asm_c.o"], Local),
    sc("preprocessed_i", "gcc", &["-c", "pre.i"], Remote(1)),
    sc("preprocessed_i_g_clang", "clang", &["-g", "-O2", "-c", "pre.i", "-o", "pre_c.o"], Remote(1)),
    sc("preprocessed_ii", "g++", &["-g", "-c", "pre.ii", "-o", "pre_ii.o"], Remote(1)),
    sc("preprocessed_i_under_gxx", "g++", &["-c", "pre.i", "-o", "pre_gxx.o"], Remote(1)),
    sc("preprocessed_i_depfile", "gcc", &["-c", "pre.i", "-MD", "-o", "pre_d.o"], Local),
    sc("preprocess_e", "gcc", &["-E", "a.c"], Local),
    sc("preprocess_e_clang", "clang", &["-E", "-P", "a.c", "-o", "a.pp"], Local),
    sc("march_native", "gcc", &["-march=native", "-c", "a.c"], Local),
    sc("coverage", "gcc", &["--coverage", "-frandom-seed=x", "-c", "a.c"], Local),
    sc("save_temps", "gcc", &["-save-temps", "-c", "a.c"], Local),
    sc("query_version", "gcc", &["--version"], Local),
    sc("query_version_clang", "clang", &["--version"], Local),
    sc("query_dumpmachine", "gcc", &["-dumpmachine"], Local),
    sc("query_print_file_name", "gcc", &["-print-file-name=libc.so"], Local),
    sc("stdin_source", "gcc", &["-x", "c", "-c", "-", "-o", "stdin.o"], Local),
    sc("split_dwarf_gcc", "gcc", &["-g", "-gsplit-dwarf", "-c", "a.c", "-o", "a.o"], Local),
    sc("split_dwarf_clang", "clang", &["-g", "-gsplit-dwarf", "-c", "a.c", "-o", "a.o"], Remote(1)),
];

#[test]
fn outputs() {
    run_group("outputs", OUTPUTS, false);
}

/// Each form through the include closure (the default): the server writes the dependency file,
/// or, where it names headers by absolute paths, the local compiler does, in one run.
#[test]
fn dependencies() {
    run_group("dependencies", DEPENDENCIES, false);
}

/// Each form with the compiler's own scan (no include closure), which writes the dependency
/// file in its one run.
#[test]
fn dependencies_from_the_compilers_scan() {
    let mut table = Vec::new();
    for scenario in DEPENDENCIES {
        let mut env = scenario.env.to_vec();
        env.push(("HOMCC_NO_INCLUDE_CLOSURE", "1"));
        table.push(Scenario {
            env: env.leak(),
            ..*scenario
        });
    }
    run_group("dependencies (scan)", &table, false);
}

#[test]
fn diagnostics() {
    run_group("diagnostics", DIAGNOSTICS, false);
}

#[test]
fn preprocessor() {
    run_group("preprocessor", PREPROCESSOR, false);
}

#[test]
fn paths() {
    run_group("paths", PATHS, false);
}

#[test]
fn a_10_mb_source() {
    run_group("big", BIG, true);
}

#[test]
fn builds() {
    run_group("builds", BUILDS, false);
}

#[test]
fn names_and_response_files() {
    run_group("names", NAMES, false);
}

#[test]
fn local_forms() {
    run_group("local", LOCAL_FORMS, false);
}

/// The scenario table is what the suite promises: enough lines, unique names (they are
/// directory names).
#[test]
fn the_table_has_at_least_60_distinct_scenarios() {
    let all: Vec<&Scenario> = [
        OUTPUTS,
        DEPENDENCIES,
        DIAGNOSTICS,
        PREPROCESSOR,
        PATHS,
        BIG,
        BUILDS,
        NAMES,
        LOCAL_FORMS,
    ]
    .iter()
    .flat_map(|group| group.iter())
    .collect();
    let names: std::collections::BTreeSet<&str> = all.iter().map(|s| s.name).collect();
    assert_eq!(names.len(), all.len(), "scenario names repeat");
    assert!(all.len() >= 60, "only {} scenarios", all.len());
}

/// Runs every scenario of `table` against one server; reports all failures at the end.
fn run_group(group: &str, table: &[Scenario], big: bool) {
    let root = tempfile::tempdir().unwrap();
    let template = Template::build(&root.path().join("template"), big);
    let server_cache = tempfile::tempdir().unwrap();
    let client_cache = tempfile::tempdir().unwrap();
    let server = TestServer::start(server_cache.path(), |_| {});
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut remote_compiles = 0;
    for scenario in table {
        let dir = root.path().join("runs").join(scenario.name);
        let (problems, line) =
            run_scenario(&template, &dir, scenario, &server, client_cache.path());
        println!("{group}: {line}");
        if let Remote(n) | RemoteThenLocal(n) = scenario.expect {
            remote_compiles += n;
        }
        if !problems.is_empty() {
            failures.push(format!(
                "scenario {} ({} {}):\n{}",
                scenario.name,
                scenario.compiler,
                scenario.args.join(" "),
                problems.join("\n")
            ));
        }
    }
    if let Err(e) = no_stray_connections(
        &root.path().join("sentinel"),
        &server,
        client_cache.path(),
        remote_compiles,
    ) {
        failures.push(e);
    }
    println!(
        "{group}: {} scenarios, {} failed, {:.1} s",
        table.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Runs one scenario both ways; returns what differs or went against the expectation, and its
/// summary line.
fn run_scenario(
    template: &Template,
    dir: &Path,
    scenario: &Scenario,
    server: &TestServer,
    client_cache: &Path,
) -> (Vec<String>, String) {
    let started = Instant::now();
    let local = template.run(dir, scenario, None);
    let local_time = started.elapsed();
    let before = server.records().len();
    let started = Instant::now();
    // A dependency file is written by the one preprocessor run of each source's scan; from the
    // include closure, by the server or by one local run.
    let counting = (scenario.writes_depfile()).then(|| Counting::new(&dir.with_extension("count")));
    let scan = (scenario.env.iter()).any(|(name, _)| *name == "HOMCC_NO_INCLUDE_CLOSURE");
    let homcc = Homcc {
        server,
        client_cache,
        counting: counting.as_ref(),
    };
    let remote = template.run(dir, scenario, Some(homcc));
    let remote_time = started.elapsed();
    let mut problems = differences(&local, &remote);
    if let (Some(counting), Remote(n)) = (&counting, scenario.expect) {
        let runs = counting.runs();
        if (scan && runs.len() != n) || runs.len() > n {
            let times = if scan { "once" } else { "at most once" };
            problems.push(format!(
                "expected homcc to run the compiler {times} per source ({n}), for its scan; it ran {runs:#?}"
            ));
        }
    }
    let seen = match scenario.expect {
        Remote(n) | RemoteThenLocal(n) => {
            wait_for_or(Duration::from_secs(10), || {
                server.records().len() >= before + n
            });
            let records = server.records();
            let new = &records[before..];
            let outcomes: Vec<&str> = new.iter().map(|r| r.outcome.as_str()).collect();
            if new.len() != n || !outcomes.iter().all(|o| o.starts_with("exit ")) {
                problems.push(format!(
                    "expected {n} remote compile(s) with the compiler's verdict; the server recorded {outcomes:?}"
                ));
            }
            new.len()
        }
        Local => {
            let records = server.records();
            let new = &records[before..];
            if !new.is_empty() {
                let outcomes: Vec<&str> = new.iter().map(|r| r.outcome.as_str()).collect();
                problems.push(format!(
                    "expected no connection (local); the server recorded {outcomes:?}"
                ));
            }
            new.len()
        }
    };
    let line = format!(
        "{:<30} {:<8} {:<10} server saw {seen}, exit {:?}, {} file(s); plain {:>4} ms, homcc {:>4} ms",
        scenario.name,
        if problems.is_empty() { "ok" } else { "FAILED" },
        format!("{:?}", scenario.expect),
        local.code,
        local.files.len(),
        local_time.as_millis(),
        remote_time.as_millis(),
    );
    (problems, line)
}

/// A last remote compile after all scenarios: it must be the only connection after the
/// scenarios' own, so that no "local" scenario connected after its check.
fn no_stray_connections(
    dir: &Path,
    server: &TestServer,
    client_cache: &Path,
    remote_compiles: usize,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("sentinel.c"), "int sentinel;\n").unwrap();
    let out = homcc_command(server, client_cache)
        .args(["gcc", "-c", "sentinel.c"])
        .current_dir(dir)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(format!(
            "the closing compile failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let expected = remote_compiles + 1;
    wait_for_or(Duration::from_secs(10), || {
        server.records().len() >= expected
    });
    let records = server.records();
    let last_is_sentinel = records
        .last()
        .is_some_and(|r| r.output.ends_with("sentinel.o"));
    if records.len() != expected || !last_is_sentinel {
        return Err(format!(
            "the server recorded {} connections, expected {remote_compiles} from the scenarios and the closing compile last: {:?}",
            records.len(),
            records.iter().map(|r| (&r.output, &r.outcome)).collect::<Vec<_>>()
        ));
    }
    Ok(())
}

/// `homcc --host <server>` with its own cache and no settings from the environment.
fn homcc_command(server: &TestServer, client_cache: &Path) -> Command {
    let mut cmd = Command::new(bin("homcc"));
    isolate(&mut cmd, client_cache).args(["--host", &server.host()]);
    cmd
}

/// A file-system entry as the snapshot sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    File(Vec<u8>),
    Dir,
    Symlink(PathBuf),
    /// In the template, gone after the run.
    Removed,
}

/// What one run did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// Every entry created, changed or removed under the scenario directory, by relative path.
    files: BTreeMap<PathBuf, Entry>,
}

/// The template project: `work/` (the working directory) and `outside/` beside it.
/// How a scenario's second run goes through homcc.
#[derive(Clone, Copy)]
struct Homcc<'a> {
    server: &'a TestServer,
    client_cache: &'a Path,
    /// Wrappers that count the compiler's runs, if they are to be counted.
    counting: Option<&'a Counting>,
}

struct Template {
    path: PathBuf,
    entries: BTreeMap<PathBuf, Entry>,
}

impl Template {
    fn build(path: &Path, big: bool) -> Template {
        let work = path.join("work");
        let write = |rel: &str, content: &str| {
            let file = path.join(rel);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, content).unwrap();
        };
        for (rel, content) in FILES {
            write(rel, content);
        }
        if big {
            write("work/big.c", &big_source(10 << 20));
        }
        std::fs::create_dir_all(work.join("obj")).unwrap();
        symlink("target.o", work.join("link.o")).unwrap();
        // Objects for the links that take objects.
        let built = Command::new("gcc")
            .args(["-c", "main.c", "b.c"])
            .current_dir(&work)
            .output()
            .unwrap();
        assert!(built.status.success(), "{built:?}");
        let entries = walk(path);
        Template {
            path: path.to_owned(),
            entries,
        }
    }

    /// Copies the template to `dir`, runs the scenario there (plainly, or through homcc against
    /// `server`), snapshots what changed and removes `dir`.
    fn run(&self, dir: &Path, scenario: &Scenario, homcc: Option<Homcc<'_>>) -> Run {
        copy_tree(&self.path, dir);
        let work = dir.join("work");
        let outside = dir.join("outside");
        let args: Vec<String> = scenario
            .args
            .iter()
            .map(|a| {
                a.replace("{dir}", work.to_str().unwrap())
                    .replace("{outside}", outside.to_str().unwrap())
            })
            .collect();
        let mut cmd = match homcc {
            None => Command::new(scenario.compiler),
            Some(homcc) => {
                let mut cmd = homcc_command(homcc.server, homcc.client_cache);
                if let Some(counting) = homcc.counting {
                    cmd.env("PATH", counting.path());
                }
                cmd.arg(scenario.compiler);
                cmd
            }
        };
        let out = cmd
            .args(&args)
            .envs(scenario.env.iter().copied())
            .current_dir(&work)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let now = walk(dir);
        let mut files: BTreeMap<PathBuf, Entry> = now
            .iter()
            .filter(|(path, entry)| self.entries.get(*path) != Some(entry))
            .map(|(path, entry)| (path.clone(), entry.clone()))
            .collect();
        for path in self.entries.keys().filter(|p| !now.contains_key(*p)) {
            files.insert(path.clone(), Entry::Removed);
        }
        std::fs::remove_dir_all(dir).unwrap();
        Run {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
            files,
        }
    }
}

/// Every entry under `root`, by path relative to it.
fn walk(root: &Path) -> BTreeMap<PathBuf, Entry> {
    fn visit(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                out.insert(rel, Entry::Symlink(std::fs::read_link(&path).unwrap()));
            } else if meta.is_dir() {
                out.insert(rel, Entry::Dir);
                visit(root, &path, out);
            } else {
                out.insert(rel, Entry::File(std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    visit(root, root, &mut out);
    out
}

/// Copies `from` to `to` (which must not exist): files, directories, symlinks as they are.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if kind.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Everything that differs between the plain run and the homcc run, described.
fn differences(local: &Run, remote: &Run) -> Vec<String> {
    let mut out = Vec::new();
    if local.code != remote.code {
        out.push(format!(
            "exit code: plain {:?}, homcc {:?}",
            local.code, remote.code
        ));
    }
    for (what, l, r) in [
        ("stdout", &local.stdout, &remote.stdout),
        ("stderr", &local.stderr, &remote.stderr),
    ] {
        if l != r {
            out.push(format!(
                "{what} differs:\n--- plain\n{}\n--- homcc\n{}",
                show(l),
                show(r)
            ));
        }
    }
    let paths: std::collections::BTreeSet<&PathBuf> =
        local.files.keys().chain(remote.files.keys()).collect();
    for path in paths {
        let (l, r) = (local.files.get(path), remote.files.get(path));
        if l != r {
            out.push(format!(
                "{}: plain {}, homcc {}{}",
                path.display(),
                describe(l),
                describe(r),
                first_difference(l, r)
            ));
        }
    }
    out
}

/// Text as it is (lossy, at most 3000 bytes), or a note for binary output.
fn show(bytes: &[u8]) -> String {
    if bytes.contains(&0) {
        return format!("<{} bytes of binary>", bytes.len());
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(3000)]).into_owned();
    if bytes.len() > 3000 {
        format!("{text}... ({} bytes in all)", bytes.len())
    } else {
        text
    }
}

fn describe(entry: Option<&Entry>) -> String {
    match entry {
        None => "untouched/absent".into(),
        Some(Entry::File(bytes)) => format!("{} bytes", bytes.len()),
        Some(Entry::Dir) => "a new directory".into(),
        Some(Entry::Symlink(to)) => format!("a symlink to {}", to.display()),
        Some(Entry::Removed) => "removed".into(),
    }
}

/// Where two versions of a file part, with both texts when they are short text.
fn first_difference(l: Option<&Entry>, r: Option<&Entry>) -> String {
    let (Some(Entry::File(l)), Some(Entry::File(r))) = (l, r) else {
        return String::new();
    };
    let at = l
        .iter()
        .zip(r)
        .position(|(a, b)| a != b)
        .unwrap_or(l.len().min(r.len()));
    let mut s = format!("; first difference at byte {at}");
    let text = |b: &[u8]| !b.contains(&0) && std::str::from_utf8(b).is_ok();
    if text(l) && text(r) {
        let _ = write!(s, "\n--- plain\n{}\n--- homcc\n{}", show(l), show(r));
    } else {
        let (only_l, only_r) = (strings_only_in(l, r), strings_only_in(r, l));
        let _ = write!(
            s,
            "; strings only in plain: {only_l:?}; only in homcc: {only_r:?}"
        );
    }
    s
}

/// The printable runs (6 bytes or more, as `strings` finds them) of `a` that `b` lacks, at most
/// ten: in an object file, the paths and names that differ.
fn strings_only_in(a: &[u8], b: &[u8]) -> Vec<String> {
    let runs = |bytes: &[u8]| -> std::collections::BTreeSet<String> {
        bytes
            .split(|c| !(c.is_ascii_graphic() || *c == b' '))
            .filter(|run| run.len() >= 6)
            .map(|run| String::from_utf8_lossy(run).into_owned())
            .collect()
    };
    let theirs = runs(b);
    runs(a)
        .into_iter()
        .filter(|run| !theirs.contains(run))
        .take(10)
        .collect()
}

/// A C source of at least `size` bytes: functions each returning a byte of its own long string
/// literal (quick to compile at -O0).
fn big_source(size: usize) -> String {
    let mut s = String::from("/* generated: many functions with long string literals */\n");
    let mut n = 0;
    while s.len() < size {
        let _ = writeln!(s, "static const char text{n}[] =");
        for line in 0..64 {
            let _ = writeln!(s, "  \"{:<70}\"", format!("function {n} line {line} "));
        }
        let _ = writeln!(s, ";\nint f{n}(int i) {{ return text{n}[i] + {n}; }}");
        n += 1;
    }
    s
}

/// The template's files (relative to the template; the working directory is `work/`).
const FILES: &[(&str, &str)] = &[
    ("work/envinc.c", "#include <envonly.h>\nint from_env(void) { return ENV_ONLY; }\n"),
    ("work/envdir/envonly.h", "#define ENV_ONLY 42\n"),
    ("work/envdir2/envonly.h", "#define ENV_ONLY 7\n"),
    ("work/a.h", "#define A_VALUE 1\n"),
    (
        "work/a.c",
        "#include <stdio.h>\n#include \"a.h\"\nint main(void) { printf(\"%s %d\\n\", __FILE__, A_VALUE); return 0; }\n",
    ),
    ("work/b.c", "int twice(int x) { return 2 * x; }\n"),
    (
        "work/main.c",
        "#include <math.h>\n#include <stdio.h>\nint twice(int);\n\
         int main(int argc, char **argv) { (void)argv; printf(\"%d %f\\n\", twice(21), sqrt((double)argc)); return 0; }\n",
    ),
    (
        "work/c.cpp",
        "#include <string>\n#include <vector>\n\
         std::string name() { return std::string(__FILE__) + \"!\"; }\n\
         int count(const std::vector<int>& v) { return static_cast<int>(v.size()); }\n",
    ),
    (
        "work/cmain.cpp",
        "#include <cstdio>\nextern \"C\" int twice(int);\nint main() { std::printf(\"%d\\n\", twice(21)); }\n",
    ),
    (
        "work/warn.c",
        "#include <stdio.h>\nint f(int unused_param) { int unused_local; printf(\"%d\\n\", \"not a number\"); return 0; }\n",
    ),
    (
        "work/warnhdr.cpp",
        "#include \"warns.hpp\"\nint g() { return h<int>(); }\n",
    ),
    (
        "work/inc/warns.hpp",
        "template <class T> int h() { int unused; T t{}; return t < 0u ? 1 : 0; }\n",
    ),
    ("work/syntax.c", "int main(void) { return 0 }\n"),
    ("work/missing.c", "#include \"nonexistent.h\"\nint x;\n"),
    ("work/inc/broken.h", "struct broken { int x }\n"),
    (
        "work/hdrerr.c",
        "#include \"broken.h\"\nint main(void) { return 0; }\n",
    ),
    (
        "work/defs.c",
        "#ifdef GONE\n#error GONE is still defined\n#endif\nconst char *msg = MSG;\n",
    ),
    ("work/forced.h", "#define FORCED 3\n"),
    ("work/forced.c", "int forced = FORCED;\n"),
    (
        "work/macros.h",
        "#define FROM_IMACROS 4\nint not_emitted_by_imacros;\n",
    ),
    ("work/imac.c", "int v = FROM_IMACROS;\n"),
    ("work/quote/q.h", "#define QUOTED 5\n"),
    ("work/iq.c", "#include \"q.h\"\nint q = QUOTED;\n"),
    ("work/after/late.h", "#define LATE 6\n"),
    ("work/ida.c", "#include <late.h>\nint l = LATE;\n"),
    (
        "work/sys/sysh.h",
        "static int unused_in_system_header(void) { int x; return x; }\n#define SYS 7\n",
    ),
    ("work/isys.c", "#include <sysh.h>\nint s = SYS;\n"),
    (
        "work/both.c",
        "#include \"q.h\"\n#include <sysh.h>\nint b = QUOTED + SYS;\n",
    ),
    ("work/needs_outside.c", "int n = OUTSIDE;\n"),
    ("outside/inc/o.h", "#define OUTSIDE 11\n"),
    ("work/useout.c", "#include <o.h>\nint o = OUTSIDE;\n"),
    (
        "outside/abs.c",
        "#include \"inc/o.h\"\nint abs_v = OUTSIDE;\nconst char *p = __FILE__;\n",
    ),
    ("work/sysroot/usr/include/fs.h", "#define FREESTANDING 8\n"),
    (
        "work/fs.c",
        "#include <stddef.h>\n#include <fs.h>\nsize_t fs = FREESTANDING;\n",
    ),
    ("work/inc/other.h", "#define OTHER 2\n"),
    (
        "work/computed.c",
        "#define HEADER \"a.h\"\n#include HEADER\n#define STR(x) #x\n#define XSTR(x) STR(x)\n\
         #include XSTR(inc/other.h)\nint c = A_VALUE + OTHER;\n",
    ),
    (
        "work/file.c",
        "const char *file = __FILE__;\nconst char *base = __BASE_FILE__;\n\
         const char *when = __DATE__ \" \" __TIME__;\nint counter[] = { __COUNTER__, __COUNTER__ };\n",
    ),
    ("work/empty.c", ""),
    ("work/src/s.c", "int in_subdir(void) { return 10; }\n"),
    (
        "work/sp ace.c",
        "#include \"a.h\"\nconst char *f = __FILE__; int v = A_VALUE;\n",
    ),
    (
        "work/com,ma.c",
        "#include \"a.h\"\nconst char *f = __FILE__; int v = A_VALUE;\n",
    ),
    (
        "work/ü.c",
        "#include \"a.h\"\nconst char *f = __FILE__; int v = A_VALUE;\n",
    ),
    ("work/code.txt", "int from_text(void) { return 3; }\n"),
    (
        "work/cxx.c",
        "#include <string>\nnamespace n { std::string s() { return \"C++ in a .c file\"; } }\n",
    ),
    (
        "work/asm.S",
        "#include \"asmdefs.h\"\n\t.text\n\t.globl f\nf:\n\tmovl $VALUE, %eax\n\tret\n",
    ),
    ("work/asmdefs.h", "#define VALUE 42\n"),
    ("work/unused/readme.txt", "a directory no compile includes from\n"),
    (
        "work/objc.m",
        "#include <stddef.h>\n@interface Counter { int n; }\n- (int)next;\n@end\n@implementation Counter\n- (int)next { return ++n; }\n@end\n",
    ),
    (
        "work/objcxx.mm",
        "#include <vector>\n@interface V { int n; }\n- (int)size;\n@end\n@implementation V\n- (int)size { std::vector<int> v(3); return (int)v.size(); }\n@end\n",
    ),
    (
        "work/pre.ii",
        "# 1 \"pre.cpp\"\nnamespace n { int preprocessed() { return 9; } }\n",
    ),
    (
        "work/pre.i",
        "# 1 \"pre.c\"\nint preprocessed(void) { return 9; }\n",
    ),
    ("work/flags.rsp", "-O2 -Iinc\n-DNAME=\"quoted value\"\n"),
    (
        "work/all.rsp",
        "@flags.rsp -c \"sp ace.c\" -o 'rsp out.o'\n",
    ),
    ("work/rsp/inner.rsp", "-DX=1\n"),
    ("work/rsp/outer.rsp", "@inner.rsp -c a.c -o r.o\n"),
    ("work/existing.o", "stale contents\n"),
    ("work/existing.s", "stale assembly\n"),
    ("work/target.o", "the symlink's target\n"),
];
