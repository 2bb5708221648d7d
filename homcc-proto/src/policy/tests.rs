//! The argument policy, case by case: command lines from real builds are allowed; every flag
//! that runs or loads code, reads or writes outside the job root, or links is refused, in each
//! spelling.

use std::ffi::OsString;

/// `line` is the arguments, separated by single spaces; `expected` is `Ok` or the start of the
/// refusal's message.
fn check(line: &str, expected: Result<(), &str>) {
    let args: Vec<OsString> = line.split(' ').map(OsString::from).collect();
    match (super::check(&args), expected) {
        (Ok(()), Ok(())) => {}
        (Err(e), Err(start)) => assert!(
            e.to_string().starts_with(start),
            "{line}: refused with '{e}', expected '{start}...'"
        ),
        (got, want) => panic!("{line}: got {got:?}, expected {want:?}"),
    }
}

#[test]
#[rustfmt::skip]
fn allows_real_command_lines() {
    check("-O2 -g -fPIC -std=c++17 -Wall -Wextra -DNDEBUG -I/usr/include/foo -isystem /x -MD -MF a.d -c a.cpp -o a.o", Ok(()));
    check("-c a.c -o a.o", Ok(()));
    check("-c a.c -oa2.o", Ok(()));
    check("-c a.c", Ok(()));
    check("-g -c a.c -o /home/u/outside/a.o", Ok(()));
    check("-S a.c -o obj/a.s", Ok(()));
    check("-c -S a.c", Ok(()));
    check("-O0 -Os -Ofast -Og -Oz -O3 -c a.c", Ok(()));
    check("-c a.c -MMD -MP -MT custom-target -MQ $(OBJ)/a.o -MG -MFobj/joined.d", Ok(()));
    check("-D GONE -D MSG=\"it's\" -UGONE -U X -DMSG=\"hello -c defs.c", Ok(()));
    check("-include forced.h -includeforced.h -imacros macros.h -c forced.c", Ok(()));
    check("-iquote quote -iquotequote -idirafter after -isystemsys -Iinc -I inc2 -c a.c", Ok(()));
    check("-iprefix /p/ -isysroot /sdk -isysroot/sdk2 -c a.c", Ok(()));
    check("--sysroot=sysroot -ffreestanding -c fs.c", Ok(()));
    check("--sysroot /home/u/sysroot -ffreestanding -c fs.c", Ok(()));
    check("-fmacro-prefix-map=/home/u/p/= -c /home/u/p/file.c -o mpm.o", Ok(()));
    check("-g -ffile-prefix-map=/home/u/p=. -fdebug-prefix-map=/home/u=/src -c a.c", Ok(()));
    check("-fdebug-compilation-dir=/src -fcoverage-prefix-map=/a=/b -c a.c", Ok(()));
    check("-x c -c code.txt", Ok(()));
    check("-xc++ -c a.c", Ok(()));
    check("-c -x c code.txt -x none b.c", Ok(()));
    check("-x assembler-with-cpp -c asm.S", Ok(()));
    check("-x cpp-output -c pre.i", Ok(()));
    check("-fdiagnostics-color=always -Wall -Werror -Werror=unused-variable -c warn.c", Ok(()));
    check("-pedantic -pedantic-errors -Wpedantic -w -Wmissing-include-dirs -c a.c", Ok(()));
    check("-O2 -flto -c main.c -o 0-main.o", Ok(()));
    check("-g -gsplit-dwarf -c a.c -o a.o", Ok(()));
    check("-g3 -ggdb -gdwarf-4 -gz=zlib -gline-tables-only -c a.c", Ok(()));
    check("--target=aarch64-linux-gnu -ffreestanding -O2 -g -c cross.c -o cross.o", Ok(()));
    check("-target aarch64-linux-gnu -c a.c", Ok(()));
    check("-arch arm64 -c a.c", Ok(()));
    check("-m64 -march=x86-64-v3 -mtune=generic -mno-red-zone -mcpu=cortex-a72 -c a.c", Ok(()));
    check("-stdlib=libc++ -nostdinc -nostdinc++ -nostdlib -nostdlib++ -nostdlibinc -c a.cpp", Ok(()));
    check("-undef -nobuiltininc -c a.c", Ok(()));
    check("-pthread -pipe -ansi -trigraphs -v -H -Qunused-arguments -no-canonical-prefixes -c a.c", Ok(()));
    check("--std=c11 -std=gnu++20 -c a.c", Ok(()));
    check("--param max-inline-insns-single=10 --param=l1-cache-size=32 -c a.c", Ok(()));
    check("-fsanitize=address,undefined -fno-sanitize-recover=all -fstack-protector-strong -c a.c", Ok(()));
    check("-fcf-protection -fno-omit-frame-pointer -fvisibility=hidden -fno-rtti -fopenmp -c a.c", Ok(()));
    check("-fno-sanitize-ignorelist -fopt-info -fsyntax-only -c a.c", Ok(()));
    check("-frandom-seed=bazel-out/k8/bin/a.o -c a.c", Ok(()));
    check("-finstrument-functions -finstrument-functions-exclude-file-list=/usr/include -c a.c", Ok(()));
    check("-c ../work/a.c -o up.o", Ok(()));
    check("-c /home/u/p/a.c ../outside/abs.c", Ok(()));
}

#[test]
#[rustfmt::skip]
fn allows_what_stops_before_linking() {
    check("-E a.c", Ok(()));
    check("-E -P -C -CC -dD -dM -dN -dI -dU a.c -o a.pp", Ok(()));
    check("-M a.c", Ok(()));
    check("-MM a.c -MF only.d", Ok(()));
}

#[test]
#[rustfmt::skip]
fn allows_linker_flags_that_cannot_run() {
    check("-c a.c -lm -Wl,-O1", Ok(()));
    check("-c a.c -lm -L/usr/lib -Wl,-O1 -Xlinker --as-needed", Ok(()));
    check("-c a.c -l m -L /usr/lib -Wl,--plugin=/x/evil.so -fuse-ld=lld", Ok(()));
    check("-c a.c -static -static-libgcc -shared -pie -no-pie -rdynamic -nostartfiles -nodefaultlibs", Ok(()));
    check("-c a.c --rtlib=compiler-rt -unwindlib=libunwind", Ok(()));
}

#[test]
#[rustfmt::skip]
fn refuses_linking() {
    check("a.c -o app", Err("no -c, -S or -E: the command would link"));
    check("a.c", Err("no -c, -S or -E"));
    check("-O2 main.c b.c -o app -lm", Err("no -c, -S or -E"));
    check("-Wl,--plugin=/x/evil.so a.c", Err("no -c, -S or -E"));
    check("-fsyntax-only a.c", Err("no -c, -S or -E"));
    check("-Xclang -c a.c", Err("unknown flag -Xclang -c"));
    check("-o -c a.c", Err("no -c, -S or -E"));
}

#[test]
#[rustfmt::skip]
fn allows_safe_pass_through_options() {
    check("-Xclang -fno-pch-timestamp -Xclang -disable-O0-optnone -c a.c", Ok(()));
    check("-Xclang -fcolor-diagnostics -Xclang -Wno-foo -Xclang -DX=1 -c a.c", Ok(()));
    check("-Wa,--noexecstack,-mrelax-relocations=no -Xassembler --fatal-warnings -c a.c", Ok(()));
    check("-Wa,-gdwarf-5,--compress-debug-sections=zlib,--64 -c asm.S", Ok(()));
    check("-Wp,-DX=1,-UY -Xpreprocessor -DZ -c a.c", Ok(()));
    check("-Wp,-P,-C -E a.c", Ok(()));
}

#[test]
#[rustfmt::skip]
fn refuses_programs_and_configuration() {
    check("-wrapper gdb,--args -c a.c", Err("-wrapper runs the compiler's programs under another program: homccd refuses it"));
    check("-wrapper,gdb -c a.c", Err("-wrapper,gdb runs the compiler's programs"));
    check("--wrapper gdb -c a.c", Err("--wrapper runs the compiler's programs"));
    check("-B/tmp/evil -c a.c", Err("-B/tmp/evil changes where the compiler finds the programs it runs"));
    check("-B /tmp/evil -c a.c", Err("-B changes where the compiler finds"));
    check("-c a.c -B", Err("-B changes where"));
    check("-specs=x.specs -c a.c", Err("-specs=x.specs reads a specs file"));
    check("-specs x.specs -c a.c", Err("-specs reads a specs file"));
    check("--specs=/x/evil.specs -c a.c", Err("--specs=/x/evil.specs reads a specs file"));
    check("--specs /x/evil.specs -c a.c", Err("--specs reads a specs file"));
    check("--gcc-toolchain=/opt/gcc -c a.c", Err("--gcc-toolchain=/opt/gcc chooses another compiler installation"));
    check("--gcc-toolchain /opt/gcc -c a.c", Err("--gcc-toolchain chooses another"));
    check("-gcc-toolchain /opt/gcc -c a.c", Err("-gcc-toolchain chooses another"));
    check("--gcc-install-dir=/opt/gcc/lib/gcc/x/12 -c a.c", Err("--gcc-install-dir=/opt/gcc/lib/gcc/x/12 chooses"));
    check("-ccc-gcc-name evil -c a.c", Err("-ccc-gcc-name changes the programs clang's driver runs"));
    check("-ccc-install-dir /x -c a.c", Err("-ccc-install-dir changes the programs"));
    check("--config=/x.cfg -c a.c", Err("--config=/x.cfg reads a configuration file"));
    check("--config /x.cfg -c a.c", Err("--config reads a configuration file"));
    check("--config-system-dir=/x -c a.c", Err("--config-system-dir=/x reads a configuration file"));
    check("-iplugindir=/x -c a.c", Err("-iplugindir=/x chooses where the compiler loads plugins from"));
}

#[test]
#[rustfmt::skip]
fn refuses_plugins() {
    check("-fplugin=/x/evil.so -c a.c", Err("-fplugin=/x/evil.so loads code into the compiler: homccd refuses it"));
    check("-fplugin=evil -c a.c", Err("-fplugin=evil loads code"));
    check("-fplugin-arg-evil-key=v -c a.c", Err("-fplugin-arg-evil-key=v loads code"));
    check("-fpass-plugin=/x/evil.so -c a.c", Err("-fpass-plugin=/x/evil.so loads code"));
    check("-Xclang -load -Xclang /x/evil.so -c a.c", Err("-Xclang -load loads code into the compiler"));
    check("-Xclang -plugin -Xclang evil -c a.c", Err("-Xclang -plugin runs a compiler plugin"));
    check("-Xclang -add-plugin -Xclang evil -c a.c", Err("-Xclang -add-plugin runs a compiler plugin"));
    check("-Xclang -plugin-arg-evil -Xclang x -c a.c", Err("-Xclang -plugin-arg-evil runs a compiler plugin"));
    check("-Xclang -fplugin=evil.so -c a.c", Err("-Xclang -fplugin=evil.so loads code"));
    check("-Wp,-fplugin=evil.so -c a.c", Err("unknown flag -Wp,-fplugin=evil.so"));
    check("-mllvm -info-output-file=x -c a.c", Err("-mllvm passes options to LLVM"));
    check("-fcompare-debug=-fplugin=evil -c a.c", Err("-fcompare-debug=-fplugin=evil runs a second compile"));
}

#[test]
#[rustfmt::skip]
fn refuses_response_files() {
    check("@args.rsp", Err("@args.rsp reads a response file on the server"));
    check("-c @args.rsp", Err("@args.rsp reads a response file"));
    check("-c a.c -o @x", Err("@x reads a response file"));
    check("-c a.c -D @x", Err("@x reads a response file"));
    check("-Xclang @x -c a.c", Err("@x reads a response file"));
    check("-Wa,@x -c a.c", Err("-Wa,@x reads a response file"));
}

#[test]
#[rustfmt::skip]
fn refuses_profiles_and_file_lists() {
    check("-fprofile-use=/x/prof -c a.c", Err("-fprofile-use=/x/prof reads or writes profile or coverage files outside the job root"));
    check("-fprofile-instr-use=x.profdata -c a.c", Err("-fprofile-instr-use=x.profdata reads or writes profile"));
    check("-fprofile-sample-use=x -c a.c", Err("-fprofile-sample-use=x reads or writes profile"));
    check("-fprofile-generate -c a.c", Err("-fprofile-generate reads or writes profile"));
    check("-fprofile-generate=/tmp/p -c a.c", Err("-fprofile-generate=/tmp/p reads or writes profile"));
    check("-fprofile-arcs -c a.c", Err("-fprofile-arcs reads or writes profile"));
    check("-fprofile-instr-generate -c a.c", Err("-fprofile-instr-generate reads or writes profile"));
    check("--coverage -c a.c", Err("--coverage reads or writes profile"));
    check("-ftest-coverage -c a.c", Err("-ftest-coverage reads or writes profile"));
    check("-fauto-profile=x.afdo -c a.c", Err("-fauto-profile=x.afdo reads or writes profile"));
    check("-fcs-profile-generate -c a.c", Err("-fcs-profile-generate reads or writes profile"));
    check("-fsanitize-blacklist=/x -c a.c", Err("-fsanitize-blacklist=/x reads a list file"));
    check("-fsanitize-ignorelist=ignore.txt -c a.c", Err("-fsanitize-ignorelist=ignore.txt reads a list file"));
    check("-fsanitize-system-ignorelist=x -c a.c", Err("-fsanitize-system-ignorelist=x reads a list file"));
    check("-fsanitize-coverage-allowlist=x -c a.c", Err("-fsanitize-coverage-allowlist=x reads a list file"));
    check("-fsanitize-coverage-ignorelist=x -c a.c", Err("-fsanitize-coverage-ignorelist=x reads a list file"));
    check("-fxray-attr-list=x -c a.c", Err("-fxray-attr-list=x reads a list file"));
    check("-fbasic-block-sections=list=/etc/x -c a.c", Err("-fbasic-block-sections=list=/etc/x reads a list file"));
}

#[test]
#[rustfmt::skip]
fn refuses_files_written_beside_the_compile() {
    check("-save-temps -c a.c", Err("-save-temps writes intermediate files"));
    check("-save-temps=obj -c a.c", Err("-save-temps=obj writes intermediate files"));
    check("--save-temps -c a.c", Err("--save-temps writes intermediate files"));
    check("-fdump-tree-all -c a.c", Err("-fdump-tree-all writes dump files"));
    check("-fdump-rtl-expand=/tmp/x -c a.c", Err("-fdump-rtl-expand=/tmp/x writes dump files"));
    check("-ftime-trace -c a.c", Err("-ftime-trace writes a file that homcc does not bring back"));
    check("-ftime-trace=/tmp/t.json -c a.c", Err("-ftime-trace=/tmp/t.json writes a file"));
    check("-fstack-usage -c a.c", Err("-fstack-usage writes a file that homcc does not bring back"));
    check("-fcallgraph-info -c a.c", Err("-fcallgraph-info writes a file"));
    check("-fcallgraph-info=su,da -c a.c", Err("-fcallgraph-info=su,da writes a file"));
    check("-fsave-optimization-record -c a.c", Err("-fsave-optimization-record writes a file"));
    check("-foptimization-record-file=/tmp/x -c a.c", Err("-foptimization-record-file=/tmp/x writes a file"));
    check("-fopt-info-vec-all=report.txt -c a.c", Err("-fopt-info-vec-all=report.txt writes a file"));
    check("-fcrash-diagnostics-dir=/tmp -c a.c", Err("-fcrash-diagnostics-dir=/tmp writes a file"));
    check("-fdeps-file=x.json -c a.c", Err("-fdeps-file=x.json writes a file"));
    check("-aux-info x.aux -c a.c", Err("-aux-info writes a file"));
    check("-dumpdir /tmp/ -c a.c", Err("-dumpdir chooses where auxiliary files go"));
    check("-dumpbase x -c a.c", Err("-dumpbase chooses where auxiliary files go"));
    check("-gen-cdb-fragment-path /tmp -c a.c", Err("-gen-cdb-fragment-path writes reproducers"));
    check("-module-dependency-dir /tmp -c a.c", Err("-module-dependency-dir writes module files"));
    check("-objcmt-migrate-literals -c a.m", Err("-objcmt-migrate-literals rewrites source files"));
}

#[test]
#[rustfmt::skip]
fn refuses_modules() {
    check("-fmodules -c a.cpp", Err("-fmodules uses module files, caches or mappers outside the job root"));
    check("-fmodules-ts -c a.cpp", Err("-fmodules-ts uses module files"));
    check("-fmodule-mapper=|evil -c a.cpp", Err("-fmodule-mapper=|evil uses module files"));
    check("-fmodule-file=x.pcm -c a.cpp", Err("-fmodule-file=x.pcm uses module files"));
    check("-fmodules-cache-path=/tmp/m -c a.cpp", Err("-fmodules-cache-path=/tmp/m uses module files"));
    check("-fprebuilt-module-path=/tmp/m -c a.cpp", Err("-fprebuilt-module-path=/tmp/m reads module files"));
}

#[test]
#[rustfmt::skip]
fn refuses_paths_that_are_not_mapped() {
    check("-fthinlto-index=/etc/x -c a.c", Err("-fthinlto-index=/etc/x names a path that homccd cannot map into the job root"));
    check("-fsomething=../../../x -c a.c", Err("-fsomething=../../../x names a path"));
    check("-Wsomething=/x -c a.c", Err("-Wsomething=/x names a path"));
    check("-isystem-after/usr/include -c a.c", Err("-isystem-after/usr/include names an include dir that homccd does not map"));
    check("-include-pch /x/a.pch -c a.c", Err("-include-pch reads a precompiled header"));
    check("-iwithprefix ../../../../../../../../etc -c a.c", Err("-iwithprefix adds an include dir under a prefix"));
    check("-iprefix /p/ -iwithprefixinc -c a.c", Err("-iwithprefixinc adds an include dir"));
    check("-iwithprefixbefore inc -c a.c", Err("-iwithprefixbefore adds an include dir"));
    check("-Xclang -include-pch -Xclang a.pch -c a.c", Err("unknown flag -Xclang -include-pch"));
    check("-Xclang -fdebug-compilation-dir -Xclang /x -c a.c", Err("unknown flag -Xclang /x"));
    check("-Xclang -fdebug-compilation-dir=/x -c a.c", Err("-Xclang -fdebug-compilation-dir=/x names a path"));
    check("-Wa,-I,/x -c a.c", Err("-Wa,-I names an include dir that homccd does not map"));
    check("-Wa,-adhln=a.lst -c a.c", Err("-Wa,-adhln=a.lst writes an assembler listing file"));
    check("-Wa,--MD,x.d -c a.c", Err("-Wa,--MD writes a dependency file"));
    check("-Wa,--debug-prefix-map=/a=/b -c a.c", Err("-Wa,--debug-prefix-map=/a=/b names a path"));
    check("-Xassembler -I -Xassembler /x -c a.c", Err("-Xassembler -I names an include dir"));
    check("-Wp,-MD,/abs/a.d -c a.c", Err("-Wp,-MD writes a dependency file at a path homccd does not map"));
    check("-Wp,-MMD,a.d -c a.c", Err("-Wp,-MMD writes a dependency file"));
    check("-Xpreprocessor -MD -c a.c", Err("-Xpreprocessor -MD writes a dependency file"));
    check("-Wp,-I/x -c a.c", Err("-Wp,-I/x names a path"));
}

#[test]
#[rustfmt::skip]
fn refuses_the_server_machine() {
    check("-march=native -c a.c", Err("-march=native depends on the machine"));
    check("-mtune=native -c a.c", Err("-mtune=native depends on the machine"));
    check("-mcpu=native -c a.c", Err("-mcpu=native depends on the machine"));
}

#[test]
#[rustfmt::skip]
fn refuses_unknown_flags() {
    check("-print-file-name=libc.so -c a.c", Err("unknown flag -print-file-name=libc.so: homccd runs only flags it knows"));
    check("-working-directory /x -c a.c", Err("unknown flag -working-directory"));
    check("-ivfsoverlay x.yaml -c a.c", Err("unknown flag -ivfsoverlay"));
    check("-cxx-isystem /x -c a.c", Err("unknown flag -cxx-isystem"));
    check("-iframework /x -c a.c", Err("unknown flag -iframework"));
    check("-resource-dir /x -c a.c", Err("unknown flag -resource-dir"));
    check("-time=/tmp/t -c a.c", Err("unknown flag -time=/tmp/t"));
    check("--driver-mode=cl -c a.c", Err("unknown flag --driver-mode=cl"));
    check("-x c -c -", Err("unknown flag -"));
    check("-I- -c a.c", Err("unknown flag -I-"));
    check("-o-x -c a.c", Err("unknown flag -o-x"));
    check("-Xclang -emit-obj -c a.c", Err("unknown flag -Xclang -emit-obj"));
    check("-Wa,-Z -c a.c", Err("unknown flag -Wa,-Z"));
    check("-x fortran -c a.f", Err("-x fortran: homccd accepts only c, c++,"));
    check("-xc-header -c a.h", Err("-x c-header: homccd accepts only"));
}

#[test]
#[rustfmt::skip]
fn refuses_missing_values() {
    check("-c a.c -o", Err("-o lacks its value"));
    check("-c a.c -Xclang", Err("-Xclang lacks its value"));
    check("-Xclang -D -c a.c", Err("-Xclang -D lacks its value"));
}

#[test]
fn messages_are_one_short_line() {
    let long = format!("-fplugin=/x/{}\n.so", "a".repeat(300));
    let e = super::check(&[long.into(), "-c".into()])
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\n') && e.len() < 200, "{e}");
}
