//! homcc, the compiler wrapper: classify the command line, scan and hash the compile's files,
//! send it to a homccd, write back what it returns; or compile locally, saying why.

pub mod depfile;
pub mod hosts;
