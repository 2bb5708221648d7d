//! The argument policy (docs/security.md; docs/protocol.md §4, `Forbidden`): homccd runs a
//! client's compiler arguments only if every flag is in its allowlist, so that no argument runs
//! or loads code, reads or writes outside the job root, or links. homcc checks the same table
//! before it asks a host, so a command homccd would refuse runs locally at once, quietly.
//!
//! It reads the arguments by homcc-proto's flag table (`flags`), each row of which says what
//! homccd does with a flag; homccd's `args` moves the paths of the same tokens into the job root
//! and keeps them from leaving it.

use std::{
    ffi::{OsStr, OsString},
    os::unix::ffi::OsStrExt,
};

use crate::flags::{
    self, Attach, Flag, Rule, Token, Value,
    Verdict::{Allow, Inner, NoPath, OneOf, Outer, Refuse, Stop},
    RULES,
};

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

/// Checks a client's compiler arguments: every flag must be allowed, and the command must stop
/// before linking. Arguments that are not flags are inputs, which `args` keeps in the job root.
pub fn check(args: &[OsString]) -> Result<(), Forbidden> {
    let mut stops = false;
    for token in flags::tokens(args) {
        match token {
            Token::Input(_) => {}
            Token::ResponseFile(arg) => return Err(response_file(arg)),
            Token::Unknown(arg) => return Err(Forbidden::Unknown { arg: show(arg) }),
            Token::Flag(flag) => stops |= check_flag(&flag)?,
        }
    }
    if !stops {
        return Err(Forbidden::Links);
    }
    Ok(())
}

/// Checks one flag by its row; true if it stops the compile before linking.
fn check_flag(flag: &Flag) -> Result<bool, Forbidden> {
    let (rule, shown) = (flag.rule, || show(flag.arg));
    if let Refuse = rule.verdict {
        return Err(Forbidden::Refused {
            arg: shown(),
            why: rule.note,
        });
    }
    let value = match flag.value {
        Value::None => OsStr::new(""),
        Value::Joined(value) => value,
        // The compiler reads `@file` in any argument, also in a flag's separate value.
        Value::Separate(value) if value.as_bytes().starts_with(b"@") => {
            return Err(response_file(value))
        }
        Value::Separate(value) => value,
        Value::Missing => return Err(Forbidden::MissingValue { arg: shown() }),
    };
    let value = value.as_bytes();
    match rule.verdict {
        Stop => return Ok(true),
        Allow | Refuse => {}
        NoPath if value.contains(&b'/') => return Err(Forbidden::Path { arg: shown() }),
        NoPath => {}
        OneOf(allowed) if !allowed.iter().any(|a| a.as_bytes() == value) => {
            return Err(Forbidden::Value {
                arg: format!("{} {}", rule.spelling, show(OsStr::from_bytes(value))),
                allowed: allowed.join(", "),
            })
        }
        OneOf(_) => {}
        Inner(inner) => {
            let (items, sep): (Vec<&[u8]>, &str) = match rule.attach {
                Attach::Joined => (value.split(|b| *b == b',').collect(), ""),
                _ => (vec![value], " "),
            };
            for item in items.into_iter().filter(|i| !i.is_empty()) {
                check_inner(OsStr::from_bytes(item), inner)
                    .map_err(|e| e.within(rule.spelling, sep))?;
            }
        }
        Outer => {
            check_alone(flag.arg, RULES)?;
        }
    }
    Ok(false)
}

/// One option passed on to another program: a flag of `table`, naming no path.
fn check_inner(item: &OsStr, table: &'static [Rule]) -> Result<(), Forbidden> {
    if item.as_bytes().contains(&b'/') && item.as_bytes().starts_with(b"-") {
        return Err(Forbidden::Path { arg: show(item) });
    }
    check_alone(item, table).map(drop)
}

/// One flag of `table` with nothing after it to take a separate value from.
fn check_alone(item: &OsStr, table: &'static [Rule]) -> Result<bool, Forbidden> {
    match flags::token(item, table, || None) {
        Token::ResponseFile(item) => Err(response_file(item)),
        Token::Input(item) | Token::Unknown(item) => Err(Forbidden::Unknown { arg: show(item) }),
        Token::Flag(flag) => check_flag(&flag),
    }
}

fn response_file(arg: &OsStr) -> Forbidden {
    Forbidden::Refused {
        arg: show(arg),
        why: "reads a response file on the server (homcc expands @file on the client)",
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
fn show(arg: &OsStr) -> String {
    crate::text::shown(&arg.to_string_lossy(), 100)
}

#[cfg(test)]
mod tests;
