//! `--generate` of both binaries: a man page or a shell's completion script, made from the clap
//! definition of the command line, so that they always say what `--help` says. The Debian
//! packages ship the generated files (debian/rules).

use std::io::{self, Write};

use clap_complete::Shell;
use clap_mangen::{
    roff::{roman, Roff},
    Man,
};

/// What `--generate` writes to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generate {
    /// The man page (roff), for `man -l -`
    Man,
    /// The bash completion script
    CompleteBash,
    /// The zsh completion script
    CompleteZsh,
    /// The fish completion script
    CompleteFish,
}

/// The parts of a man page that are not in `--help`.
#[derive(Debug, Clone, Copy)]
pub struct ManPage<'a> {
    /// The manual section: "1" for homcc, "8" for homccd.
    pub section: &'a str,
    /// The FILES section: one paragraph per line.
    pub files: &'a str,
    /// The SEE ALSO section.
    pub see_also: &'a str,
}

/// `--generate KIND`: writes `kind` for `cmd` to stdout; the exit code.
pub fn print(kind: Generate, cmd: clap::Command, page: ManPage) -> std::process::ExitCode {
    let name = cmd.get_name().to_owned();
    match write(kind, cmd, page, &mut io::stdout().lock()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // `homcc --generate man | head`: the reader had enough.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: --generate: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Writes `kind` for `cmd` to `out`.
pub fn write(
    kind: Generate,
    mut cmd: clap::Command,
    page: ManPage,
    out: &mut dyn Write,
) -> io::Result<()> {
    let shell = match kind {
        Generate::Man => return man(cmd, page, out),
        Generate::CompleteBash => Shell::Bash,
        Generate::CompleteZsh => Shell::Zsh,
        Generate::CompleteFish => Shell::Fish,
    };
    let name = cmd.get_name().to_owned();
    clap_complete::generate(shell, &mut cmd, name, out);
    Ok(())
}

/// The man page: clap's sections (name, synopsis, description, options, the text after the
/// options, version), then FILES and SEE ALSO.
fn man(cmd: clap::Command, page: ManPage, out: &mut dyn Write) -> io::Result<()> {
    let version = cmd.get_version().unwrap_or_default().to_owned();
    let has_after = cmd.get_after_long_help().is_some() || cmd.get_after_help().is_some();
    let man = Man::new(cmd)
        .section(page.section)
        .source(format!("homcc {version}"))
        .manual("homcc");
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    if has_after {
        // clap_mangen calls this section EXTRA; what follows the options is where settings come
        // from, which man pages call CONFIGURATION.
        let mut extra = Vec::new();
        man.render_extra_section(&mut extra)?;
        let extra = String::from_utf8_lossy(&extra).replacen(".SH EXTRA", ".SH CONFIGURATION", 1);
        out.write_all(extra.as_bytes())?;
    }
    let mut roff = Roff::default();
    for (heading, text) in [("FILES", page.files), ("SEE ALSO", page.see_also)] {
        roff.control("SH", [heading]);
        for paragraph in text.lines() {
            roff.control("PP", []);
            roff.text([roman(paragraph)]);
        }
    }
    roff.to_writer(out)?;
    man.render_version_section(out)
}
