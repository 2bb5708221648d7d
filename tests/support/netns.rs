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
