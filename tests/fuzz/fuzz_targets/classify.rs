//! The client's command-line classifier: any arguments (NUL-separated bytes) classify as local
//! or remote without panicking, for every driver.
#![no_main]

use std::{ffi::OsString, os::unix::ffi::OsStringExt, path::Path};

use homcc_client::classify::{classify, Driver};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let args: Vec<OsString> = data
        .split(|&b| b == 0)
        .map(|arg| OsString::from_vec(arg.to_vec()))
        .collect();
    for name in ["gcc", "g++", "clang", "clang++"] {
        let _ = classify(&args, Path::new("/work/project"), Driver::from_name(name.as_ref()));
    }
});
