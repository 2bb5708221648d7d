//! Network namespaces of a test's own (`ip netns`, needs root and iproute2, as CI has): a
//! loopback to shape (`thin_link`) or to give more addresses, so that one machine can be
//! several clients to homccd (`load`). Deleted on drop.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// A network namespace with its loopback up.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// `homcc-<purpose>-<pid>`, with `lo` up at `mtu`.
    pub fn new(purpose: &str, mtu: u32) -> NetNs {
        let name = format!("homcc-{purpose}-{}", std::process::id());
        let net = NetNs { name };
        ip(&["netns", "add", &net.name]);
        net.exec_ok(&["ip", "link", "set", "lo", "mtu", &mtu.to_string(), "up"]);
        net
    }

    /// Runs `command` inside the namespace; panics if it fails.
    pub fn exec_ok(&self, command: &[&str]) {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend(command);
        ip(&args);
    }

    /// `program` run inside the namespace.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// The file that stands for the namespace (for `setns`).
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .expect("iproute2 is installed");
    assert!(
        status.success(),
        "ip {args:?} failed: this test needs root and iproute2"
    );
}

/// A listener on `0.0.0.0:0` inside `net` (bound on a thread that enters the namespace; the
/// socket stays there whichever thread uses it).
pub fn listen_in(net: &NetNs) -> std::net::TcpListener {
    let path = net.path();
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let ns = std::fs::File::open(&path).expect("the namespace's file");
        // SAFETY: `ns` is an open namespace descriptor; setns changes only this thread.
        let entered = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(entered, 0, "setns: {}", std::io::Error::last_os_error());
        std::net::TcpListener::bind("0.0.0.0:0").expect("bind in the namespace")
    })
    .join()
    .unwrap()
}

/// Two namespaces of a test's own joined by a veth pair, as a client machine and a build server
/// on one link: the client is `10.77.0.1`, the server `10.77.0.2` (addresses that exist only in
/// these namespaces). The link can be taken down and up again, as a cable pulled and plugged.
#[derive(Debug)]
pub struct Link {
    pub client: NetNs,
    pub server: NetNs,
}

/// The server's address on a [`Link`].
pub const LINK_SERVER: &str = "10.77.0.2";

impl Link {
    /// A link whose direction from client to server, and from server to client, is limited to
    /// the given `tc` rates (`None`: as fast as veth goes).
    pub fn new(purpose: &str, to_server: Option<&str>, to_client: Option<&str>) -> Link {
        let client = NetNs::new(&format!("{purpose}-c"), 65536);
        let server = NetNs::new(&format!("{purpose}-s"), 65536);
        client.exec_ok(&[
            "ip",
            "link",
            "add",
            "veth-c",
            "type",
            "veth",
            "peer",
            "name",
            "veth-s",
            "netns",
            &server.name,
        ]);
        for (net, dev, addr, rate) in [
            (&client, "veth-c", "10.77.0.1/24", to_server),
            (&server, "veth-s", "10.77.0.2/24", to_client),
        ] {
            net.exec_ok(&["ip", "addr", "add", addr, "dev", dev]);
            net.exec_ok(&["ip", "link", "set", dev, "mtu", "1500", "up"]);
            if let Some(rate) = rate {
                net.exec_ok(&[
                    "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate, "burst", "16kb",
                    "latency", "400ms",
                ]);
            }
        }
        Link { client, server }
    }

    /// Takes the link down on the client's side (`ip link set veth-c down`): nothing crosses it
    /// any more, and neither end is told.
    pub fn cut(&self) {
        self.client
            .exec_ok(&["ip", "link", "set", "veth-c", "down"]);
    }

    /// Brings the link back up.
    pub fn mend(&self) {
        self.client.exec_ok(&["ip", "link", "set", "veth-c", "up"]);
    }

    /// The largest send queue (bytes written but not yet acknowledged) of an established TCP
    /// connection in `net`, as `ss` shows it.
    pub fn send_queue(net: &NetNs) -> u64 {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &net.name,
                "ss",
                "-tnH",
                "state",
                "established",
            ])
            .output()
            .expect("ss is installed (iproute2)");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| line.split_whitespace().nth(1)?.parse().ok())
            .max()
            .unwrap_or(0)
    }
}
