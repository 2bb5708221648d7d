//! The lexer of header names, case by case: what it finds, what it skips, what it refuses.

use super::*;

/// The names `text` looks up, written `"n"`, `<n>`, with `next:` and `has:` marks.
fn names(text: &str) -> Result<Vec<String>, String> {
    lookups(text.as_bytes()).map(|found| {
        found
            .lookups
            .iter()
            .map(|l| {
                let name = match (&l.name, &l.macro_name) {
                    (Some(name), _) => String::from_utf8_lossy(name),
                    (None, Some(macro_name)) => {
                        format!("MACRO {}", String::from_utf8_lossy(macro_name)).into()
                    }
                    (None, None) => "MACRO".into(),
                };
                let written = match l.delimiter {
                    Delimiter::Quote => format!("\"{name}\""),
                    Delimiter::Angle => format!("<{name}>"),
                };
                let next = if l.next { "next:" } else { "" };
                let has = if l.existence { "has:" } else { "" };
                format!("{has}{next}{written}")
            })
            .collect()
    })
}

fn check(text: &str, want: &[&str]) {
    assert_eq!(
        names(text),
        Ok(want.iter().map(|s| s.to_string()).collect()),
        "{text}"
    );
}

/// `text` uses an identifier with `has_include` in it without a header name.
fn unnamed(text: &str) {
    let names = lookups(text.as_bytes()).unwrap();
    assert!(!names.has_include_uses.is_empty(), "{text}");
}

#[test]
fn finds_every_include_form() {
    check("#include <a.h>\n#include \"b.h\"\n", &["<a.h>", "\"b.h\""]);
    check("  #  include_next <c.h>", &["next:<c.h>"]);
    check("#import \"d.h\"", &["\"d.h\""]);
    check("%:include <digraph.h>", &["<digraph.h>"]);
    check("#include<nospace.h>", &["<nospace.h>"]);
    check("#include \"sp ace.h\" // comment", &["\"sp ace.h\""]);
    check("#include \"a\\b.h\"", &["\"a\\b.h\""]);
    check("#include <x.h>\n#include <x.h>\n", &["<x.h>"]);
    check("#if 0\n#include <never.h>\n#endif\n", &["<never.h>"]);
}

#[test]
fn comments_and_splices_are_seen_through() {
    check("/* a */ #include <after_comment.h>", &["<after_comment.h>"]);
    check("#/**/include/**/<c.h>", &["<c.h>"]);
    check("#inc\\\nlude <spliced.h>", &["<spliced.h>"]);
    check("#include \\\r\n <crlf.h>", &["<crlf.h>"]);
    check(
        "x; /* spans\n lines */ #include <next_line.h>",
        &["<next_line.h>"],
    );
    check("// #include <commented.h>\n", &[]);
    check("/* #include <commented.h> */", &[]);
    check(
        "// a line comment \\\n#include <continued_comment.h>\n",
        &[],
    );
}

#[test]
fn literals_hide_nothing() {
    check(
        "s = \"/*\";\n#include <after_string.h>\n",
        &["<after_string.h>"],
    );
    check("c = '\"';\n#include <after_char.h>\n", &["<after_char.h>"]);
    check(
        "n = 1'000'000; s = \"/*\";\n#include <digits.h>\n",
        &["<digits.h>"],
    );
    check(
        "f = 0x1p-3'f; #include <mid_line.h>\n#include <y.h>",
        &["<y.h>"],
    );
    check(
        "s = \"unterminated\n#include <after_open.h>\n",
        &["<after_open.h>"],
    );
    check(
        "#error don't\n#include <after_apostrophe.h>\n",
        &["<after_apostrophe.h>"],
    );
    check(
        "R\"x(\n#include <in_raw.h>\n/*)x\";\n#include <after_raw.h>\n",
        &["<after_raw.h>"],
    );
    check("u8R\"(/*)\";\n#include <u8raw.h>\n", &["<u8raw.h>"]);
    check("L\"/*\";\n#include <wide.h>\n", &["<wide.h>"]);
    check("s = \"#include <in_string.h>\";", &[]);
}

#[test]
fn has_include_with_a_header_name_is_a_lookup() {
    check("#if __has_include(<a.h>)\n#endif", &["has:<a.h>"]);
    check(
        "# if __has_include (\"linux/stat.h\")",
        &["has:\"linux/stat.h\""],
    );
    check("#if __has_include_next( <b.h> )", &["has:next:<b.h>"]);
    check(
        "#if __glibc_has_include (\"bits/c.h\")",
        &["has:\"bits/c.h\""],
    );
    check(
        "#  define _GLIBCXX_USE_TBB_PAR_BACKEND __has_include(<tbb/tbb.h>)",
        &["has:<tbb/tbb.h>"],
    );
}

#[test]
fn has_include_tested_or_defined_is_no_lookup() {
    let glibc = "#ifdef __has_include\n# define __glibc_has_include __has_include\n#else\n\
                 # define __glibc_has_include(header)\t0\n#endif\n";
    check(glibc, &[]);
    check(
        "#if defined(__has_include) && defined __has_include_next\n",
        &[],
    );
    check(
        "#ifndef __has_include\n#undef __has_include\n#endif // __has_include\n",
        &[],
    );
    check("/* __has_include argument (GCC PR 80005).  */", &[]);
}

#[test]
fn computed_includes_are_marked() {
    check(
        "#include FT_FREETYPE_H\n#include <a.h>",
        &["\"MACRO FT_FREETYPE_H\"", "<a.h>"],
    );
    check("#  include_next SOME(x)", &["next:\"MACRO\""]);
    check("#include <unterminated\n", &["\"MACRO\""]);
}

#[test]
fn lookups_that_cannot_be_named_are_noted() {
    unnamed("#if __has_include(HEADER)\n");
    unnamed("#define HAS(x) __has_include(x)\n");
    unnamed("#define H __has_include\n");
    unnamed("x = __has_include;");
    check("state->has_include = 1; s.has_include = 0;", &[]);
}

#[test]
fn trigraphs_are_noted() {
    let trigraphs = |text: &str| lookups(text.as_bytes()).unwrap().trigraphs;
    assert!(trigraphs("#include <a.h> ??= "));
    assert!(trigraphs("a ??/\n"));
    assert!(!trigraphs("a ?? = ? ?/\n"));
}

#[test]
fn computed_includes_of_a_macro_alone_name_it() {
    check("#include HEADER\n", &["\"MACRO HEADER\""]);
    check("#include HEADER /* c */ // c\n", &["\"MACRO HEADER\""]);
    check("#include_next NEXT_H", &["next:\"MACRO NEXT_H\""]);
    check("#include A B\n", &["\"MACRO\""]);
}

#[test]
fn macros_defined_as_a_header_name_and_otherwise() {
    let names = lookups(
        b"#define H \"x.h\"\n#define A <sys/a.h> // c\n#define F(x) \"f.h\"\n\
          #define N 1\n#define M \"m.h\" more\n#define E\n",
    )
    .unwrap();
    let headers: Vec<(&[u8], &[u8], Delimiter)> = (names.header_macros.iter())
        .map(|m| (&m.name[..], &m.header[..], m.delimiter))
        .collect();
    assert_eq!(
        headers,
        [
            (&b"H"[..], &b"x.h"[..], Delimiter::Quote),
            (&b"A"[..], &b"sys/a.h"[..], Delimiter::Angle)
        ]
    );
    let mut others: Vec<u64> = [&b"F"[..], b"N", b"M", b"E"]
        .iter()
        .map(|n| macro_hash(n))
        .collect();
    others.sort_unstable();
    assert_eq!(names.other_macros, others);
}

/// What the compilers read as they do, found in a review of the include closure: each hid an
/// `#include` from the lexer.
#[test]
fn line_ends_splices_and_blanks_as_the_compilers_read_them() {
    // A byte order mark before the first directive.
    check("\u{feff}#include \"bom.h\"\n", &["\"bom.h\""]);
    // A lone carriage return ends a line.
    check("// c\r#include \"cr.h\"\r", &["\"cr.h\""]);
    check("#define A 1\r\n#include \"crlf.h\"\r\n", &["\"crlf.h\""]);
    // A backslash, blanks and a line end are a splice: the comment closes on the next line.
    check("/* c *\\ \t\n/ #include \"after.h\"\n", &["\"after.h\""]);
    check(
        "/* c *\\ \r\n/\n#include \"crlf_after.h\"\n",
        &["\"crlf_after.h\""],
    );
    // A NUL is a blank.
    check("\0#include \"nul.h\"\n", &["\"nul.h\""]);
}

#[test]
fn raw_strings_and_digit_separators_are_marked() {
    let marked = |text: &str| {
        let names = lookups(text.as_bytes()).unwrap();
        (names.raw_strings, names.digit_separators)
    };
    let raw = "const char *s = R\"x(#include <hidden.h>)x\";\n";
    assert_eq!(marked(raw), (true, false));
    assert_eq!(marked("int n = 1'000;\n"), (false, true));
    let neither = "int n = 1000; char c = 'a';\nconst char *s = \"R\";\n";
    assert_eq!(marked(neither), (false, false));
}
