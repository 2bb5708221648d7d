//! homcc's classification and homccd's argument policy agree: every command homcc would send
//! passes homccd's policy, every flag homcc keeps local because homccd refuses it is refused
//! there, and every role homcc gives a flag names a row of homcc-proto's one flag table. Built
//! from the tables themselves, so that a flag added to one side alone makes a test fail.

use std::{ffi::OsString, path::Path};

use homcc_client::classify::{
    classify,
    flags::{role, Role, ROLES},
    Driver, Plan,
};
use homcc_proto::{
    flags::{Attach, Rule, Verdict, RULES},
    policy,
};

/// Arguments that `rule`'s row matches, its value (if it takes one) a plain word.
fn example(rule: &Rule) -> Vec<OsString> {
    let spelling = rule.spelling.replace('*', "x");
    match rule.attach {
        Attach::None => vec![spelling.into()],
        Attach::Separate | Attach::Either => vec![spelling.into(), "word".into()],
        Attach::Joined => vec![format!("{spelling}word").into()],
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
        for rule in RULES {
            for command in commands(&example(rule)) {
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
        remote > RULES.len(),
        "most flags compile remotely ({remote} commands)"
    );
}

#[test]
fn every_flag_homcc_keeps_local_for_homccd_is_refused_there() {
    let refused: Vec<&Rule> = RULES
        .iter()
        .filter(|r| matches!(role(r), Role::Refused(_)))
        .collect();
    assert!(refused.len() >= 10, "{refused:?}");
    for rule in refused {
        let [command, _] = commands(&example(rule));
        assert!(
            policy::check(&command).is_err(),
            "homcc keeps {command:?} local because homccd refuses it, but homccd allows it"
        );
        let plan = classify(
            &command,
            Path::new("/tmp"),
            Driver::from_name("gcc".as_ref()),
        );
        assert!(matches!(plan, Plan::Local(_)), "{command:?}: {plan:?}");
    }
}

#[test]
fn every_role_names_a_row_of_the_one_table() {
    for (spelling, given) in ROLES {
        let row = RULES.iter().find(|r| r.spelling == *spelling);
        let Some(row) = row else {
            panic!("homcc gives {spelling} a role, but homcc-proto's flag table has no such row: add it there");
        };
        assert_eq!(role(row), *given, "{spelling}");
        if row.verdict == Verdict::Refuse {
            assert!(
                matches!(given, Role::Local(_)),
                "homccd refuses {spelling}, but homcc would send it as {given:?}"
            );
        }
    }
}
