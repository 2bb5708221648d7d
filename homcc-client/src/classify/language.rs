//! The source languages homcc compiles remotely: their `-x` names and file extensions.

use std::{ffi::OsStr, os::unix::ffi::OsStrExt, path::Path};

/// Source languages homcc compiles remotely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    C,
    Cxx,
    /// Assembler with C preprocessor directives (`.S`, `.sx`).
    AsmCpp,
    ObjC,
    ObjCxx,
    /// Already preprocessed C (`.i`) and C++ (`.ii`): the compile reads no other file.
    PreprocessedC,
    PreprocessedCxx,
}

impl Language {
    /// The `-x` name.
    pub fn name(self) -> &'static str {
        match self {
            Language::C => "c",
            Language::Cxx => "c++",
            Language::AsmCpp => "assembler-with-cpp",
            Language::ObjC => "objective-c",
            Language::ObjCxx => "objective-c++",
            Language::PreprocessedC => "cpp-output",
            Language::PreprocessedCxx => "c++-cpp-output",
        }
    }

    /// Whether the source is already preprocessed.
    pub fn is_preprocessed(self) -> bool {
        matches!(self, Language::PreprocessedC | Language::PreprocessedCxx)
    }

    /// Every language homcc compiles remotely.
    const ALL: [Language; 7] = [
        Language::C,
        Language::Cxx,
        Language::AsmCpp,
        Language::ObjC,
        Language::ObjCxx,
        Language::PreprocessedC,
        Language::PreprocessedCxx,
    ];

    pub(super) fn from_x(name: &OsStr) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|l| l.name().as_bytes() == name.as_bytes())
    }

    pub(super) fn from_extension(path: &Path) -> Option<Self> {
        match path.extension()?.as_bytes() {
            b"c" => Some(Language::C),
            b"cc" | b"cp" | b"cxx" | b"cpp" | b"CPP" | b"c++" | b"C" => Some(Language::Cxx),
            b"S" | b"sx" => Some(Language::AsmCpp),
            b"m" => Some(Language::ObjC),
            b"mm" | b"M" => Some(Language::ObjCxx),
            b"i" => Some(Language::PreprocessedC),
            b"ii" => Some(Language::PreprocessedCxx),
            _ => None,
        }
    }
}
