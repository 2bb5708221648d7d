//! Who may talk to homccd: the networks of `--allow` (by default loopback, private and
//! link-local ones), checked before a byte is read; and how many connections one client address
//! may hold at once, so that one client cannot take the whole server.

use std::{
    collections::HashMap,
    fmt,
    net::IpAddr,
    sync::{Arc, Mutex},
};

use ipnet::IpNet;

/// The networks allowed when none is configured: loopback, private (RFC 1918, unique local) and
/// link-local addresses.
pub const DEFAULT_ALLOW: [&str; 8] = [
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
];

/// The client networks homccd serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedNetworks(Vec<IpNet>);

impl AllowedNetworks {
    pub fn new(networks: Vec<IpNet>) -> AllowedNetworks {
        AllowedNetworks(networks)
    }

    /// Whether `peer` is in one of the networks (an IPv4 address seen as `::ffff:a.b.c.d` on a
    /// dual-stack socket counts as the IPv4 address).
    pub fn allows(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|net| net.contains(&peer))
    }
}

impl Default for AllowedNetworks {
    fn default() -> Self {
        AllowedNetworks(
            DEFAULT_ALLOW
                .iter()
                .map(|n| n.parse().expect("a valid network"))
                .collect(),
        )
    }
}

/// `10.0.0.0/8, 192.168.0.0/16`: how the start-up log names them.
impl fmt::Display for AllowedNetworks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&names.join(", "))
    }
}

/// The connections each client address holds now.
#[derive(Debug, Default)]
pub struct PerClient {
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection of a client, counted until dropped.
#[derive(Debug)]
pub struct Held {
    table: Arc<PerClient>,
    peer: IpAddr,
}

impl PerClient {
    /// Counts a connection of `peer`, unless it already holds `max`.
    pub fn enter(self: &Arc<Self>, peer: IpAddr, max: usize) -> Option<Held> {
        let mut held = self.held.lock().unwrap();
        let count = held.entry(peer).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Held {
            table: self.clone(),
            peer,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.table.held.lock().unwrap();
        if let Some(count) = held.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(list: &AllowedNetworks, peer: &str, allowed: bool) {
        assert_eq!(
            list.allows(peer.parse().unwrap()),
            allowed,
            "{peer} in {list}"
        );
    }

    #[rustfmt::skip]
    #[test]
    fn the_default_allows_loopback_private_and_link_local() {
        let list = AllowedNetworks::default();
        for peer in ["127.0.0.1", "127.1.2.3", "10.20.30.40", "172.16.0.1", "172.31.255.254",
                     "192.168.1.10", "169.254.0.5", "::1", "fd12:3456::1", "fe80::1",
                     "::ffff:10.0.0.1", "::ffff:127.0.0.1"] {
            check(&list, peer, true);
        }
        for peer in ["8.8.8.8", "172.32.0.1", "192.169.0.1", "100.64.0.1", "2001:db8::1",
                     "::ffff:8.8.8.8", "0.0.0.0", "::"] {
            check(&list, peer, false);
        }
    }

    #[test]
    fn a_configured_list_allows_only_its_networks() {
        let list = AllowedNetworks::new(vec!["203.0.113.0/24".parse().unwrap()]);
        check(&list, "203.0.113.7", true);
        check(&list, "::ffff:203.0.113.7", true);
        check(&list, "127.0.0.1", false);
        check(&list, "10.0.0.1", false);
        assert_eq!(list.to_string(), "203.0.113.0/24");
    }

    #[test]
    fn connections_are_counted_per_address_until_dropped() {
        let table = Arc::new(PerClient::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = table.enter(a, 2).unwrap();
        let _second = table.enter(a, 2).unwrap();
        assert!(table.enter(a, 2).is_none(), "a third one of a");
        assert!(table.enter(b, 2).is_some(), "b counts on its own");
        drop(first);
        let _again = table.enter(a, 2).expect("a freed place");
        assert!(table.enter(a, 2).is_none(), "a holds two again");
    }
}
