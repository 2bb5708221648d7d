//! The whole-pipeline tests, one module per area, in one test binary (the workspace links once):
//! real gcc and clang, real homccd servers on 127.0.0.1:0 (or in network namespaces of the
//! tests' own), outputs compared with local compiles. Helpers are in `homcc_tests` (`support/`).

mod attacks;
mod auth;
mod closure;
mod closure_traps;
mod command_lines;
mod cut_link;
mod disk_faults;
mod environments;
mod failures;
mod flag_tables;
mod hosts;
mod load;
mod pipeline;
mod restart;
mod result_cache;
mod scan_cache;
mod scenarios;
mod ssh;
mod thin_link;
mod tidy;
