//! What homcc itself says on stderr (one line each, `homcc: ...`), by log level: the compiler's
//! output is the rest.

use homcc_proto::config::LogLevel;

use crate::config::Settings;

/// Prints `line` at log level INFO (what runs where, what was sent).
pub fn verbose(settings: &Settings, line: &str) {
    say(settings, LogLevel::Info, line);
}

/// Prints `line` at log level DEBUG (`--verbose`: slots, back-offs).
pub fn debug(settings: &Settings, line: &str) {
    say(settings, LogLevel::Debug, line);
}

fn say(settings: &Settings, level: LogLevel, line: &str) {
    if settings.shows(level) {
        eprintln!("homcc: {line}");
    }
}
