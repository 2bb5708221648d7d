//! How either side shows a string the other side sent, in a message or a log: one line, of a
//! bounded length, so that a peer can neither forge a line nor flood one.

/// `text` cut after `max` characters (then `...`), each control character escaped (`\n`,
/// `\u{1b}`).
pub fn shown(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push_str("...");
            break;
        }
        match c.is_control() {
            true => out.extend(c.escape_default()),
            false => out.push(c),
        }
    }
    out
}

/// The first line of a program's output that says something, trimmed and [`shown`] (at most
/// 300 characters), skipping lines that start with one of `noise`; `no message` if none does.
pub fn first_line(output: &[u8], noise: &[&str]) -> String {
    let text = String::from_utf8_lossy(output);
    let line = (text.lines().map(str::trim))
        .find(|l| !l.is_empty() && !noise.iter().any(|n| l.starts_with(n)))
        .unwrap_or("no message");
    shown(line, 300)
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn one_short_line() {
        assert_eq!(
            shown("gcc\n2026-01-01 INFO forged", 500),
            "gcc\\n2026-01-01 INFO forged"
        );
        assert_eq!(shown(&"x".repeat(600), 500).len(), 503);
        assert_eq!(shown("a\u{1b}[31m", 500), "a\\u{1b}[31m");
        assert_eq!(shown("abc", 2), "ab...");
    }
}
