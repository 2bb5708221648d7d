//! The parts of the include closure that need no compiler: macros from the command line and
//! when trigraphs are on. The closure itself is tested against real compilers (tests/it).

use super::{rules::header_name, *};
use crate::{classify::Language, scan::directives};

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

#[test]
fn command_line_macros_that_are_header_names() {
    let macros = Macros::from_command(&os(&[
        "-DQ=\"q.h\"",
        "-D",
        "A=<sys/a.h>",
        "-DN=1",
        "-DF(x)=\"f.h\"",
        "-DBARE",
        "-DS= \"spaced.h\" ",
        "-DE=\"\"",
        "-Xclang",
        "-DX=\"x.h\"",
        "-Xpreprocessor",
        "-DP=<p.h>",
    ]))
    .unwrap();
    assert_eq!(macros.headers(b"Q"), [(b"q.h".to_vec(), Delimiter::Quote)]);
    assert_eq!(
        macros.headers(b"A"),
        [(b"sys/a.h".to_vec(), Delimiter::Angle)]
    );
    assert_eq!(
        macros.headers(b"S"),
        [(b"spaced.h".to_vec(), Delimiter::Quote)]
    );
    for other in ["N", "F", "BARE", "E"] {
        assert!(macros.headers(other.as_bytes()).is_empty(), "{other}");
        assert!(macros.other(other.as_bytes()), "{other}");
    }
    assert!(!macros.other(b"Q"));
    assert_eq!(macros.headers(b"X"), [(b"x.h".to_vec(), Delimiter::Quote)]);
    assert_eq!(macros.headers(b"P"), [(b"p.h".to_vec(), Delimiter::Angle)]);
    let apart = Macros::from_command(&os(&["-Xclang", "-D", "-Xclang", "H=\"h.h\""]));
    assert!(apart.is_err());
}

#[test]
fn header_names_are_whole_values() {
    assert_eq!(
        header_name(b"\"a.h\""),
        Some((b"a.h".to_vec(), Delimiter::Quote))
    );
    assert_eq!(
        header_name(b"<a/b.h>"),
        Some((b"a/b.h".to_vec(), Delimiter::Angle))
    );
    for not in [
        &b"\"a.h"[..],
        b"a.h",
        b"\"a\" \"b\"",
        b"<a> <b>",
        b"<>",
        b"x",
    ] {
        assert_eq!(header_name(not), None, "{}", String::from_utf8_lossy(not));
    }
}

#[test]
fn trigraphs_are_on_in_iso_modes_only() {
    let trigraphs = Names {
        trigraphs: true,
        ..Names::default()
    };
    let on = |args: &[&str]| {
        Dialect::of(Language::C, &os(args))
            .misread(&trigraphs)
            .is_some()
    };
    for args in [
        &["-trigraphs"][..],
        &["-ftrigraphs"],
        &["-Xclang", "-ftrigraphs"],
        &["-ansi"],
        &["-std=c99"],
        &["-std=c++11"],
        &["-std=iso9899:1990"],
    ] {
        assert!(on(args), "{args:?}");
    }
    for args in [
        &[][..],
        &["-std=gnu99"],
        &["-std=gnu++17"],
        &["-O2", "-Wtrigraphs"],
    ] {
        assert!(!on(args), "{args:?}");
    }
}

#[test]
fn raw_strings_from_cxx11_and_digit_separators_from_cxx14() {
    let raw = Names {
        raw_strings: true,
        ..Names::default()
    };
    let separators = Names {
        digit_separators: true,
        ..Names::default()
    };
    let reads = |names: &Names, language, args: &[&str]| {
        Dialect::of(language, &os(args)).misread(names).is_none()
    };
    for (language, args) in [
        (Language::Cxx, &[][..]),
        (Language::Cxx, &["-std=c++17"]),
        (Language::ObjCxx, &["-std=gnu++14"]),
    ] {
        assert!(reads(&raw, language, args), "{language:?} {args:?}");
        assert!(reads(&separators, language, args), "{language:?} {args:?}");
    }
    assert!(reads(&raw, Language::Cxx, &["-std=c++11"]));
    assert!(!reads(&separators, Language::Cxx, &["-std=c++11"]));
    assert!(!reads(&separators, Language::Cxx, &["-std=gnu++0x"]));
    for (language, args) in [
        (Language::Cxx, &["-std=gnu++98"][..]),
        (Language::C, &[]),
        (Language::C, &["-std=gnu17"]),
        (Language::AsmCpp, &[]),
    ] {
        assert!(!reads(&raw, language, args), "{language:?} {args:?}");
        assert!(!reads(&separators, language, args), "{language:?} {args:?}");
    }
    assert!(Dialect::of(Language::C, &[])
        .misread(&Names::default())
        .is_none());
}

#[test]
fn names_that_climb_within_themselves() {
    for climbs in ["sub/../x.h", "../a/../x.h", "a/b/../../x.h"] {
        assert!(climbs_within(Path::new(climbs)), "{climbs}");
    }
    for not in ["x.h", "../x.h", "../../sys/x.h", "a/b.h"] {
        assert!(!climbs_within(Path::new(not)), "{not}");
    }
}

#[test]
fn a_has_include_without_a_header_name_counts_where_it_is_the_operator_or_a_macro() {
    let uses = |text: &str, defines: &str| {
        let mut macros = Macros::default();
        macros.add(&directives::lookups(defines.as_bytes()).unwrap());
        macros.add(&directives::lookups(text.as_bytes()).unwrap());
        macros
            .unnamed_has_include()
            .map(|n| String::from_utf8_lossy(n).into_owned())
    };
    assert_eq!(uses("struct s { int has_include; };", ""), None);
    assert_eq!(uses("int x = my_has_include;", "#define other 1\n"), None);
    assert_eq!(
        uses("x = __has_include;", "").as_deref(),
        Some("__has_include")
    );
    assert_eq!(
        uses("int x = my_has_include;", "#define my_has_include 1\n").as_deref(),
        Some("my_has_include")
    );
    assert_eq!(uses("#if __has_include(<a.h>)\n#endif\n", ""), None);
}
