//! homccd, the build server: accept compile requests, fill the job root from the content-addressed
//! cache (asking the client only for what is missing), run the compiler hermetically.
//!
//! Data flow: `server` (accept: `access` checks the peer) → `session` (`auth` checks the client's
//! proof when homccd has a token; then one compile, its arguments checked by `policy`) →
//! `fill` + `cache` (job root contents) → `args` + `compile` (hermetic compiler run) → result.

pub mod access;
pub mod args;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod compile;
pub mod compilers;
pub mod config;
pub mod conn;
pub mod ending;
pub mod environments;
pub mod fill;
pub mod jobroot;
pub mod negotiate;
pub mod queue;
pub mod request;
pub mod results;
pub mod sandbox;
pub mod server;
pub mod session;
pub mod tree;

pub use server::{Server, Settings, Stats};
