//! Why a host did not compile, and what that says about the host: load (busy), its fault (every
//! homcc process skips it for a while), or only this compile's.

use std::{fmt, time::Duration};

use homcc_proto::{Refusal, RefusalReason};

use super::conn::REQUEST_TIMEOUT;
use crate::{
    slots::{BACKOFF, QUICK_BACKOFF},
    ssh::SshError,
};

/// Why a host did not compile.
#[derive(Debug)]
pub enum Failure {
    Refused(Refusal),
    Unreachable(std::io::Error),
    /// The setting `timeout` (`after` long) expired `during` something.
    TimedOut {
        timeout: &'static str,
        after: Duration,
        during: &'static str,
    },
    Lost(String),
    Protocol(String),
    /// A problem on this side (a file changed or vanished during the compile).
    Client(String),
    /// The host challenged the client for a token, and this client has none.
    AuthRequired,
    /// The host's SSH connection failed (ssh's own first error line).
    Ssh(SshError),
}

impl Failure {
    /// Whether the server's argument policy refused the compile.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Failure::Refused(r) if r.reason == RefusalReason::Forbidden)
    }

    /// Whether the server was full: load, not a failure (ask another host, or later).
    pub fn is_busy(&self) -> bool {
        matches!(self, Failure::Refused(r) if r.reason == RefusalReason::Busy)
    }

    /// Whether the host itself failed (rather than being busy, or this compile being unfit for
    /// it): then every homcc process skips it for a while.
    pub fn is_hosts_fault(&self) -> bool {
        match self {
            Failure::Refused(refusal) => matches!(
                refusal.reason,
                RefusalReason::Version { .. }
                    | RefusalReason::ShuttingDown
                    | RefusalReason::Internal
                    | RefusalReason::DiskFull
                    // A token that does not match fails every compile until a file changes.
                    | RefusalReason::AuthFailed
            ),
            // The host kept answering; the compile (or its wait in the queue) took too long.
            Failure::TimedOut {
                timeout: REQUEST_TIMEOUT,
                ..
            } => false,
            Failure::Unreachable(_)
            | Failure::Ssh(_)
            | Failure::TimedOut { .. }
            | Failure::Lost(_)
            | Failure::Protocol(_)
            | Failure::AuthRequired => true,
            Failure::Client(_) => false,
        }
    }

    /// How long every homcc process skips the host after this failure, if it is the host's
    /// fault: [`QUICK_BACKOFF`] when the next try is likely to find it back (nothing listens on
    /// the port, or the server is shutting down: a restart; its disk was full, and it has made
    /// room), else [`BACKOFF`].
    pub fn back_off(&self) -> Option<Duration> {
        let quick = match self {
            Failure::Unreachable(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
            // A full disk: homccd evicts to make room as it refuses, so the next try may fit.
            Failure::Refused(r) => {
                matches!(
                    r.reason,
                    RefusalReason::ShuttingDown | RefusalReason::DiskFull
                )
            }
            _ => false,
        };
        match (self.is_hosts_fault(), quick) {
            (false, _) => None,
            (true, true) => Some(QUICK_BACKOFF),
            (true, false) => Some(BACKOFF),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused(r) if r.reason == RefusalReason::Busy => write!(f, "{}", r.detail),
            Failure::Refused(r) => write!(f, "refused: {}", r.detail),
            Failure::Unreachable(e) => write!(f, "unreachable: {e}"),
            Failure::Ssh(e) => write!(f, "{e}"),
            Failure::TimedOut {
                timeout,
                after,
                during,
            } => write!(
                f,
                "timed out: {timeout} of {} s expired {during}",
                after.as_secs_f32()
            ),
            Failure::Lost(e) => write!(f, "connection lost: {e}"),
            Failure::Protocol(e) => write!(f, "protocol error: {e}"),
            Failure::Client(e) => write!(f, "{e}"),
            Failure::AuthRequired => f.write_str(
                "requires authentication: set auth_token_file in [homcc] (HOMCC_AUTH_TOKEN_FILE, --auth-token-file) to the server's token",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(reason: RefusalReason) -> Failure {
        Failure::Refused(Refusal {
            reason,
            detail: format!("{reason:?}"),
        })
    }

    fn timed_out(timeout: &'static str) -> Failure {
        Failure::TimedOut {
            timeout,
            after: Duration::from_secs(1),
            during: "",
        }
    }

    /// (failure, busy, the host's fault: every homcc process backs off from it).
    #[rustfmt::skip]
    #[test]
    fn busy_is_load_and_only_a_broken_host_is_backed_off() {
        use RefusalReason::*;
        let cases = [
            (refused(Busy), true, false),
            (refused(Version { server: 1 }), false, true),
            (refused(CompilerMismatch), false, false),
            (refused(InvalidRequest), false, false),
            (refused(ShuttingDown), false, true),
            (refused(Timeout), false, false),
            (refused(Internal), false, true),
            (refused(Forbidden), false, false),
            (refused(Limit), false, false),
            (refused(AuthFailed), false, true),
            (refused(Environment), false, false),
            (refused(DiskFull), false, true),
            (Failure::Unreachable(std::io::ErrorKind::ConnectionRefused.into()), false, true),
            (timed_out("establish_connection_timeout"), false, true),
            (timed_out("heartbeat timeout"), false, true),
            (timed_out(REQUEST_TIMEOUT), false, false),
            (Failure::Lost("reset".into()), false, true),
            (Failure::Protocol("bad frame".into()), false, true),
            (Failure::Client("a.h changed".into()), false, false),
            (Failure::AuthRequired, false, true),
        ];
        for (failure, busy, fault) in cases {
            assert_eq!((failure.is_busy(), failure.is_hosts_fault()), (busy, fault), "{failure:?}");
        }
    }

    /// A restart (refused connections, then "shutting down") and a full disk back off briefly;
    /// a host that fails slowly (timeouts) or for good (a version, a token) for 30 s; what is
    /// not the host's fault not at all.
    #[test]
    fn back_off_is_short_where_the_next_try_is_likely_to_work() {
        use std::io::ErrorKind;
        let quick = Some(QUICK_BACKOFF);
        let cases = [
            (
                Failure::Unreachable(ErrorKind::ConnectionRefused.into()),
                quick,
            ),
            (refused(RefusalReason::ShuttingDown), quick),
            (refused(RefusalReason::DiskFull), quick),
            (
                Failure::Unreachable(ErrorKind::HostUnreachable.into()),
                Some(BACKOFF),
            ),
            (timed_out("heartbeat timeout"), Some(BACKOFF)),
            (refused(RefusalReason::Internal), Some(BACKOFF)),
            (refused(RefusalReason::AuthFailed), Some(BACKOFF)),
            (refused(RefusalReason::Busy), None),
            (timed_out(REQUEST_TIMEOUT), None),
        ];
        for (failure, back_off) in cases {
            assert_eq!(failure.back_off(), back_off, "{failure:?}");
        }
    }
}
