//! Response-file expansion checked against what gcc 12 and clang 14 do: one line per case.

use super::*;

/// One entry of a test directory.
enum Entry<'a> {
    /// A regular file and its content.
    F(&'a str, &'a [u8]),
    /// A directory.
    D(&'a str),
    /// A symbolic link and its target.
    L(&'a str, &'a str),
}
use Entry::{D, F, L};

/// Expands `args` as `dialect` would in a fresh directory holding `entries`; arguments as
/// bytes, an error as its message.
fn expand_in(entries: &[Entry], args: &[&[u8]], dialect: Dialect) -> Result<Vec<Vec<u8>>, String> {
    let dir = tempfile::tempdir().unwrap();
    for entry in entries {
        match entry {
            F(name, content) => fs::write(dir.path().join(name), content).unwrap(),
            D(name) => fs::create_dir(dir.path().join(name)).unwrap(),
            L(name, target) => std::os::unix::fs::symlink(target, dir.path().join(name)).unwrap(),
        }
    }
    let args: Vec<OsString> = args
        .iter()
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect();
    expand(&args, dir.path(), dialect)
        .map(|out| out.into_iter().map(OsString::into_vec).collect())
        .map_err(|e| e.to_string())
}

/// Compares the arguments as escaped text (exact, and readable with non-UTF-8 bytes).
fn assert_expands(
    actual: Result<Vec<Vec<u8>>, String>,
    expected: Result<&[&[u8]], &str>,
    what: &str,
) {
    let show = |args: &[Vec<u8>]| {
        args.iter()
            .map(|a| a.escape_ascii().to_string())
            .collect::<Vec<_>>()
    };
    let actual = actual.map(|args| show(&args));
    let expected = expected
        .map(|args| show(&args.iter().map(|a| a.to_vec()).collect::<Vec<_>>()))
        .map_err(String::from);
    assert_eq!(actual, expected, "{what}");
}

/// `@f` where `f` holds `content`, expanded as gcc and as clang would.
fn check(content: &[u8], gcc: &[&[u8]], clang: &[&[u8]]) {
    let what = |d| format!("{d:?}, @f = {:?}", content.escape_ascii().to_string());
    let file = [F("f", content)];
    assert_expands(
        expand_in(&file, &[b"@f"], Dialect::Gcc),
        Ok(gcc),
        &what(Dialect::Gcc),
    );
    assert_expands(
        expand_in(&file, &[b"@f"], Dialect::Clang),
        Ok(clang),
        &what(Dialect::Clang),
    );
}

/// `check` where both compilers agree.
fn both(content: &[u8], expected: &[&[u8]]) {
    check(content, expected, expected);
}

/// `args` in a directory holding `entries`, expanded as gcc and as clang would.
fn check_tree(
    entries: &[Entry],
    args: &[&[u8]],
    gcc: Result<&[&[u8]], &str>,
    clang: Result<&[&[u8]], &str>,
) {
    let what = |d| {
        format!(
            "{d:?}, args {:?}",
            args.iter()
                .map(|a| a.escape_ascii().to_string())
                .collect::<Vec<_>>()
        )
    };
    assert_expands(
        expand_in(entries, args, Dialect::Gcc),
        gcc,
        &what(Dialect::Gcc),
    );
    assert_expands(
        expand_in(entries, args, Dialect::Clang),
        clang,
        &what(Dialect::Clang),
    );
}

const LOOP_F: &str =
    "response file 'f' includes itself, directly or through other response files: remove the loop";

#[rustfmt::skip]
#[test]
fn whitespace() {
    both(b"a b\tc\nd\re", &[b"a", b"b", b"c", b"d", b"e"]);
    both(b"  a  \n\n\n  b\n", &[b"a", b"b"]);
    both(b"\r\na\r\nb c\r\n", &[b"a", b"b", b"c"]);
    both(b"", &[]);
    both(b" \n\t\r ", &[]);
    check(b"a\x0bb\x0cc", &[b"a", b"b", b"c"], &[b"a\x0bb\x0cc"]);
    check(b"\x0b\x0c", &[], &[b"\x0b\x0c"]);
}

#[rustfmt::skip]
#[test]
fn quotes() {
    both(br#"'a b' "c d" 'e"f' "g'h""#, &[b"a b", b"c d", b"e\"f", b"g'h"]);
    both(br#"a'b c'd e"f g"h"#, &[b"ab cd", b"ef gh"]);
    both(b"'a\nb' \"c\td\"", &[b"a\nb", b"c\td"]);
    both(br#"a "b c"#, &[b"a", b"b c"]);
    both(b"a 'b c", &[b"a", b"b c"]);
    both(br#"x"" y''"#, &[b"x", b"y"]);
    check(br#"x "" y"#, &[b"x", b"", b"y"], &[b"x", b"y"]);
    check(b"x '' y", &[b"x", b"", b"y"], &[b"x", b"y"]);
    check(br#""""#, &[b""], &[]);
    check(br#"-D "" -D foo"#, &[b"-D", b"", b"-D", b"foo"], &[b"-D", b"-D", b"foo"]);
}

#[rustfmt::skip]
#[test]
fn backslashes() {
    both(br#"\a \\b c\ d \"e\" \'f"#, &[b"a", b"\\b", b"c d", b"\"e\"", b"'f"]);
    both(br#""a\"b" "a\\b" "a\zb""#, &[b"a\"b", b"a\\b", b"azb"]);
    both(br"'a\'b' 'a\\b' 'a\zb'", &[b"a'b", b"a\\b", b"azb"]);
    both(b"a\\\nb", &[b"a\nb"]);
    both(b"a\\\r\nb", &[b"a\r", b"b"]);
    check(b"a\\", &[b"a"], &[b"a\\"]);
    check(b"a \\", &[b"a", b""], &[b"a", b"\\"]);
    check(b"-D \\\n", &[b"-D", b"\n"], &[b"-D", b"\n"]);
    check(br#"a "b\"#, &[b"a", b"b"], &[b"a", b"b\\"]);
    check(br"a 'b\", &[b"a", b"b"], &[b"a", b"b\\"]);
}

#[rustfmt::skip]
#[test]
fn comments_are_ordinary_bytes() {
    both(b"# comment\na #b c#d", &[b"#", b"comment", b"a", b"#b", b"c#d"]);
}

#[rustfmt::skip]
#[test]
fn bytes() {
    both(b"a\xff\xfe b\x80", &[b"a\xff\xfe", b"b\x80"]);
    // gcc stops at the first NUL; clang cuts each argument at its first NUL.
    check(b"a\0b c", &[b"a"], &[b"a", b"c"]);
    check(b"-D \0zz -D c", &[b"-D"], &[b"-D", b"", b"-D", b"c"]);
    check(b"\0a", &[], &[b""]);
    // clang drops a UTF-8 BOM and reads UTF-16 with a BOM; gcc takes the bytes as they are.
    check(b"\xef\xbb\xbfa b", &[b"\xef\xbb\xbfa", b"b"], &[b"a", b"b"]);
    check(b"\xff\xfea\0 \0b\0", &[b"\xff\xfea"], &[b"a", b"b"]);
    check(b"\xfe\xff\0a\0 \0b", &[b"\xfe\xff"], &[b"a", b"b"]);
    check(b"\xff\xfe\x3d\xd8\x00\xde \0b\0", &[b"\xff\xfe=\xd8"], &[b"\xf0\x9f\x98\x80", b"b"]);
    check(b"\xff\xfe", &[b"\xff\xfe"], &[]);
    // UTF-16 clang cannot convert (odd length, lone surrogate): it keeps the `@f` argument.
    check(b"\xff\xfea\0 \0b", &[b"\xff\xfea"], &[b"@f"]);
    check(b"\xff\xfea\0 \0\0\xd8", &[b"\xff\xfea"], &[b"@f"]);
}

#[rustfmt::skip]
#[test]
fn not_response_files() {
    check_tree(&[], &[], Ok(&[]), Ok(&[]));
    check_tree(&[F("out", b"x1")], &[b"-c", b"x.c", b"-Wl,@out", b"-DA=@out", b""], Ok(&[b"-c", b"x.c", b"-Wl,@out", b"-DA=@out", b""]), Ok(&[b"-c", b"x.c", b"-Wl,@out", b"-DA=@out", b""]));
    check_tree(&[], &[b"@nope", b"x.c"], Ok(&[b"@nope", b"x.c"]), Ok(&[b"@nope", b"x.c"]));
    check_tree(&[], &[b"@"], Ok(&[b"@"]), Ok(&[b"@"]));
    check_tree(&[F("f", b"x")], &[b"@f/"], Ok(&[b"@f/"]), Ok(&[b"@f/"]));
    check_tree(&[F("f", b"@nope @ @g/"), F("g", b"x")], &[b"@f"], Ok(&[b"@nope", b"@", b"@g/"]), Ok(&[b"@nope", b"@", b"@g/"]));
}

#[rustfmt::skip]
#[test]
fn expanded_wherever_an_argument_starts_with_at() {
    // The value of `-o` is expanded too: expansion comes before option parsing.
    check_tree(&[F("out", b"x1")], &[b"-c", b"x.c", b"-o", b"@out"], Ok(&[b"-c", b"x.c", b"-o", b"x1"]), Ok(&[b"-c", b"x.c", b"-o", b"x1"]));
    check_tree(&[F("@f", b"x")], &[b"@@f"], Ok(&[b"x"]), Ok(&[b"x"]));
    check_tree(&[F("f", br#""@g" \@g @"g""#), F("g", b"g1")], &[b"@f"], Ok(&[b"g1", b"g1", b"g1"]), Ok(&[b"g1", b"g1", b"g1"]));
    check_tree(&[F("f", b"@g @g"), F("g", b"g1")], &[b"@f", b"-c", b"@f"], Ok(&[b"g1", b"g1", b"-c", b"g1", b"g1"]), Ok(&[b"g1", b"g1", b"-c", b"g1", b"g1"]));
    check_tree(&[F("f", b"a @g d"), F("g", b"b @h"), F("h", b"c")], &[b"@f"], Ok(&[b"a", b"b", b"c", b"d"]), Ok(&[b"a", b"b", b"c", b"d"]));
}

#[rustfmt::skip]
#[test]
fn nested_relative_names_are_found_from_cwd() {
    check_tree(&[D("sub"), F("sub/a.rsp", b"@b.rsp"), F("sub/b.rsp", b"in_sub"), F("b.rsp", b"in_cwd")], &[b"@sub/a.rsp"], Ok(&[b"in_cwd"]), Ok(&[b"in_cwd"]));
    check_tree(&[D("sub"), F("sub/a.rsp", b"@b.rsp"), F("sub/b.rsp", b"in_sub")], &[b"@sub/a.rsp"], Ok(&[b"@b.rsp"]), Ok(&[b"@b.rsp"]));
    check_tree(&[D("sub"), F("sub/a.rsp", b"@sub/b.rsp"), F("sub/b.rsp", b"in_sub")], &[b"@sub/a.rsp"], Ok(&[b"in_sub"]), Ok(&[b"in_sub"]));
}

#[rustfmt::skip]
#[test]
fn directories() {
    const DIR: &str = "'@sub' names a directory, which gcc rejects ('@-file refers to a directory'): name a file after the '@'";
    check_tree(&[D("sub")], &[b"@sub"], Err(DIR), Ok(&[b"@sub"]));
    check_tree(&[D("sub"), F("f", b"a @sub b")], &[b"@f"], Err(DIR), Ok(&[b"a", b"@sub", b"b"]));
}

#[rustfmt::skip]
#[test]
fn loops_are_errors() {
    // gcc fails with "too many @-files encountered"; clang keeps the inner `@f`, then finds
    // no input file of that name.
    check_tree(&[F("f", b"a @f b")], &[b"@f"], Err(LOOP_F), Err(LOOP_F));
    check_tree(&[F("f", b"a @./f")], &[b"@f"], Err("response file './f' includes itself, directly or through other response files: remove the loop"), Err("response file './f' includes itself, directly or through other response files: remove the loop"));
    check_tree(&[F("f", b"a @l"), L("l", "f")], &[b"@f"], Err("response file 'l' includes itself, directly or through other response files: remove the loop"), Err("response file 'l' includes itself, directly or through other response files: remove the loop"));
    check_tree(&[F("f", b"a @g"), F("g", b"b @f")], &[b"@f"], Err(LOOP_F), Err(LOOP_F));
}

#[rustfmt::skip]
#[test]
fn limits() {
    const DEEP: &str = "response files nest more than 64 levels deep at 'r65': flatten them";
    const LARGE: &str = "response files add up to more than 16777216 bytes at 'big': pass fewer or shorter arguments";
    const MANY: &str = "2000 or more '@' arguments, which gcc rejects ('too many @-files encountered'): use fewer response files";
    // r1 includes r2, ..., r64 holds `end`: 64 levels are fine, 65 are not.
    let names: Vec<String> = (1..=65).map(|i| format!("r{i}")).collect();
    let includes: Vec<Vec<u8>> = (1..=65).map(|i| format!("@r{}", i + 1).into_bytes()).collect();
    let chain = |levels: usize| -> Vec<Entry> { (0..levels).map(|i| F(&names[i], if i + 1 == levels { b"end" } else { &includes[i] })).collect() };
    check_tree(&chain(64), &[b"@r1"], Ok(&[b"end"]), Ok(&[b"end"]));
    check_tree(&chain(65), &[b"@r1"], Err(DEEP), Err(DEEP));
    // At most 16 MiB in all, counting every time a file is read.
    let big = vec![b'x'; 1 << 20];
    let times = |n: usize| b"@big ".repeat(n);
    let fifteen: Vec<&[u8]> = vec![&big[..]; 15];
    check_tree(&[F("big", &big), F("f", &times(15))], &[b"@f"], Ok(&fifteen), Ok(&fifteen));
    check_tree(&[F("big", &big), F("f", &times(16))], &[b"@f"], Err(LARGE), Err(LARGE));
    check_tree(&[F("big", &[b'x'; 17 << 20])], &[b"@big"], Err(LARGE), Err(LARGE));
    // gcc gives up at its 2000th `@` argument, response file or not: here `@f` and 1999 more.
    let nopes = |n: usize| b"@nope ".repeat(n);
    let kept: Vec<&[u8]> = vec![b"@nope"; 1998];
    check_tree(&[F("f", &nopes(1998))], &[b"@f"], Ok(&kept), Ok(&kept));
    let kept: Vec<&[u8]> = vec![b"@nope"; 1999];
    check_tree(&[F("f", &nopes(1999))], &[b"@f"], Err(MANY), Ok(&kept));
}

#[rustfmt::skip]
#[test]
fn devices_and_pipes_are_errors() {
    const NULL: &str = "response file '/dev/null' is not a regular file (a pipe, socket or device), which homcc cannot read without consuming it: write the arguments to a regular file";
    check_tree(&[], &[b"@/dev/null"], Err(NULL), Err(NULL));
    check_tree(&[F("f", b"@/dev/null")], &[b"@f"], Err(NULL), Err(NULL));
}

#[rustfmt::skip]
#[test]
fn dialect_from_compiler_name() {
    let check = |name: &str, expected| assert_eq!(Dialect::from_compiler_name(OsStr::new(name)), expected, "{name}");
    check("gcc", Dialect::Gcc);
    check("g++", Dialect::Gcc);
    check("cc", Dialect::Gcc);
    check("/usr/bin/x86_64-linux-gnu-gcc-12", Dialect::Gcc);
    check("/opt/clang/bin/gcc", Dialect::Gcc);
    check("clang", Dialect::Clang);
    check("/usr/lib/llvm-14/bin/clang++", Dialect::Clang);
    check("clang-14", Dialect::Clang);
    check("x86_64-linux-gnu-clang", Dialect::Clang);
}

#[rustfmt::skip]
#[test]
fn has_response_files_cases() {
    let check = |args: &[&str], expected| assert_eq!(has_response_files(&args.iter().map(OsString::from).collect::<Vec<_>>()), expected, "{args:?}");
    check(&[], false);
    check(&["-c", "x.c", "-o", "x.o"], false);
    check(&["-Wl,@f", "-DA=@b", ""], false);
    check(&["-c", "@f"], true);
    check(&["-o", "@out"], true);
    check(&["@"], true);
}
