//! homccd, the build server: accept compile requests, fill the job root from the content-addressed
//! cache (asking the client only for what is missing), run the compiler hermetically.

pub mod cache;
