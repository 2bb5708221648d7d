//! The client's flag table and the server's argument policy agree: every command homcc would
//! send passes homccd's policy, and every flag homcc keeps local because homccd refuses it
//! (`Role::Refused`) is refused there. Built from the tables themselves, so that a flag added to
//! one of them alone makes a test fail.

use std::{ffi::OsString, path::Path};

use homcc_client::classify::{
    classify,
    flags::{Flag, Role, Takes, FLAGS},
    Driver, Plan,
};
use homcc_proto::policy;

/// Arguments that `flag`'s entry matches, its value (if it takes one) a plain word.
fn example(flag: &Flag) -> Vec<OsString> {
    let name = flag.name;
    match flag.takes {
        Takes::Nothing => vec![name.into()],
        Takes::NextOrJoined | Takes::Next => vec![name.into(), "word".into()],
        Takes::Joined => vec![format!("{name}word").into()],
    }
}

/// `gcc -c a.c ARGS` and `gcc a.c b.c -o app ARGS` (a compile+link) with `args`.
fn commands(args: &[OsString]) -> [Vec<OsString>; 2] {
    let words = |line: &str| line.split(' ').map(OsString::from).collect::<Vec<_>>();
    let mut compile = words("-c a.c");
    let mut link = words("a.c b.c -o app");
    compile.extend(args.iter().cloned());
    link.extend(args.iter().cloned());
    [compile, link]
}

#[test]
fn every_command_homcc_would_send_passes_homccds_policy() {
    let dir = tempfile::tempdir().unwrap();
    let mut remote = 0;
    for driver in ["gcc", "clang++"] {
        let driver = Driver::from_name(driver.as_ref());
        for flag in FLAGS {
            for command in commands(&example(flag)) {
                let jobs = match classify(&command, dir.path(), driver) {
                    Plan::Remote(jobs) | Plan::CompileAndLink { jobs, .. } => jobs,
                    Plan::Local(_) => continue,
                };
                remote += 1;
                for job in jobs {
                    let checked = policy::check(&job.compile_args);
                    assert_eq!(checked, Ok(()), "{command:?} sends {:?}", job.compile_args);
                }
            }
        }
    }
    assert!(
        remote > FLAGS.len(),
        "most flags compile remotely ({remote} commands)"
    );
}

#[test]
fn every_flag_homcc_keeps_local_for_homccd_is_refused_there() {
    let refused: Vec<&Flag> = FLAGS
        .iter()
        .filter(|f| matches!(f.role, Role::Refused(_)))
        .collect();
    assert!(refused.len() >= 10, "{refused:?}");
    for flag in refused {
        let [command, _] = commands(&example(flag));
        assert!(
            policy::check(&command).is_err(),
            "homcc keeps {command:?} local because homccd refuses it, but homccd allows it: \
             make its role Local with the reason, or refuse it in the policy"
        );
        let plan = classify(
            &command,
            Path::new("/tmp"),
            Driver::from_name("gcc".as_ref()),
        );
        assert!(matches!(plan, Plan::Local(_)), "{command:?}: {plan:?}");
    }
}
