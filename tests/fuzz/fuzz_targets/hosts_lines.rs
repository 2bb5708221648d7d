//! Hosts files and `$HOMCC_HOSTS`: any text parses into hosts or a line-numbered error; a parsed
//! host's address is one `std` would connect to.
#![no_main]

use homcc_client::hosts::parse_hosts;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_hosts(text) {
        Ok(hosts) => {
            for host in hosts {
                assert!(host.limit >= 1 && host.port >= 1);
                let _ = host.to_string();
                let _ = host.key();
            }
        }
        Err(e) => assert!(e.line >= 1 && e.line <= text.lines().count().max(1)),
    }
});
