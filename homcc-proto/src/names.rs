//! Which file names are C and C++ compilers by default: homccd allows them when found on `PATH`,
//! and `homcc --update-links` makes a masquerade link for each.

/// The compiler names allowed by default when found on `PATH`, also with a version suffix
/// (`gcc-12`) or a target prefix (`aarch64-linux-gnu-gcc`); see [`is_well_known`].
pub const WELL_KNOWN: [&str; 6] = ["gcc", "g++", "cc", "c++", "clang", "clang++"];

/// Whether `name` is one of [`WELL_KNOWN`], possibly with a version suffix (`-12`, `-14.0`)
/// and a target prefix of two to four parts (`aarch64-linux-gnu-`).
pub fn is_well_known(name: &str) -> bool {
    let base = match name.rsplit_once('-') {
        Some((base, version)) if is_version(version) => base,
        _ => name,
    };
    WELL_KNOWN
        .iter()
        .any(|known| match base.strip_suffix(known) {
            Some("") => true,
            Some(prefix) => prefix.strip_suffix('-').is_some_and(is_triple),
            None => false,
        })
}

fn is_version(text: &str) -> bool {
    text.split('.')
        .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn is_triple(text: &str) -> bool {
    let parts: Vec<_> = text.split('-').collect();
    let part = |p: &&str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    };
    (2..=4).contains(&parts.len())
        && parts.iter().all(part)
        && parts[0].starts_with(|c: char| c.is_ascii_alphabetic())
}
