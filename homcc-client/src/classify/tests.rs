//! Unit tests of the classifier, one line per case: the table walk (`walk`), which decides
//! every shape, and the argument policy it is checked against (`classify`).

use super::*;

fn args(line: &str) -> Vec<OsString> {
    line.split_whitespace().map(OsString::from).collect()
}

/// The jobs of a command that must run remotely.
fn jobs(line: &str) -> Vec<RemoteJob> {
    match walk(
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
    match walk(
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
fn include_flags_name_their_dirs_once() {
    let job =
        jobs("-c a.c -Iinc -I inc -isystem sys -iquoteq -idirafter after -I/abs -include inc/x.h")
            .remove(0);
    let want: Vec<PathBuf> = ["/tmp/inc", "/tmp/sys", "/tmp/q", "/tmp/after", "/abs"]
        .map(PathBuf::from)
        .to_vec();
    assert_eq!(job.include_flag_dirs, want);
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
    let Plan::CompileAndLink { mut jobs, link } = walk(
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
    let depfile = |name: &str, line: &str| match walk(
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
    let plan = |name: &str| match walk(
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
    check(
        "-c a.c -include h.h -includeg.h -imacros m.h -iprefix p",
        "-c a.c -include h.h -includeg.h -imacros m.h -iprefix p",
        "a.c -include h.h -includeg.h -imacros m.h -iprefix p",
    );
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
    // What homccd's argument policy refuses.
    local_because("-c a.c -iwithprefix w", "compiler's own directory");
    local_because("-c a.c -iwithprefixbefore b", "compiler's own directory");
    local_because("-c a.c -fstack-usage", ".su");
    local_because("-c a.c -fcallgraph-info=su", ".ci");
    local_because("-c a.c -ftime-trace", "trace");
    local_because("-c a.c -ftime-trace=t.json", "trace");
    local_because("-c a.c -fsave-optimization-record", "optimization records");
    local_because("-c a.c -fmodules", "module");
    local_because("-c a.c -fmodule-map-file=m", "module");
    local_because("-c a.c -fcompare-debug", "twice");
    local_because("-c a.c -wrapper gdb,--args", "-wrapper");
    local_because("-c a.c --gcc-toolchain=/opt/gcc", "another gcc");
    local_because("-c a.c --gcc-toolchain /opt/gcc", "another gcc");
    local_because("-c a.c -ccc-gcc-name g++", "driver debugging");
    local_because("-c a.c --config=x.cfg", "--config");
    local_because("-c a.c -mllvm -inline-threshold=9", "-mllvm");
    local_because("-c --coverage a.c", "coverage");
    local_because("-c -fprofile-generate a.c", "profile");
    // What homccd refuses, the walk reads as refused (its row's verdict), before the policy.
    local_because("-c a.c -fsanitize-ignorelist=list.txt", "homccd refuses it");
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

#[test]
fn what_homccd_would_refuse_runs_locally_and_the_rest_goes_as_walked() {
    let driver = Driver::from_name(OsStr::new("gcc"));
    let plan = |line: &str| classify(&args(line), Path::new("/tmp"), driver);
    // Flags the walk passes on, which the policy refuses.
    for line in [
        "-c a.c -Xclang -load -Xclang x.so",
        "-c a.c -I-",
        "-c a.c -unknown-flag",
        "a.c b.c -o app -Wa,-adhln=listing",
    ] {
        assert!(
            matches!(
                walk(&args(line), Path::new("/tmp"), driver),
                Plan::Remote(_) | Plan::CompileAndLink { .. }
            ),
            "{line}"
        );
        match plan(line) {
            Plan::Local(why) => assert!(why.contains("homccd"), "{line}: {why}"),
            other => panic!("{line}: {other:?}"),
        }
    }
    for line in ["-c a.c -O2 -Wall", "a.c b.c -o app -lm"] {
        let walked = walk(&args(line), Path::new("/tmp"), driver);
        assert_eq!(plan(line), walked, "{line}");
    }
}
