//! homccd's argument policy (homcc-proto's, which homcc checks too): any arguments (NUL-separated bytes) are allowed or refused with a
//! one-line reason, without panicking; a refused argument list stays refused with more
//! arguments after it.
#![no_main]

use std::{ffi::OsString, os::unix::ffi::OsStringExt};

use homcc_proto::policy::check;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let args: Vec<OsString> = data
        .split(|&b| b == 0)
        .map(|arg| OsString::from_vec(arg.to_vec()))
        .collect();
    if let Err(refused) = check(&args) {
        assert!(!refused.to_string().contains('\n'), "{refused}");
    }
});
