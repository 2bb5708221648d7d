//! How a session ends without a result: a refusal to send the client (it compiles elsewhere),
//! or a connection that is gone. Below `auth` and `session`, which both end this way.

use std::io;

use homcc_proto::{CodecError, Refusal, RefusalReason};

use crate::{cache::is_disk_full, conn::ClientGone, fill::FillError, jobroot::PathError};

/// How a session ended without a result.
#[derive(Debug)]
pub enum Ending {
    /// Tell the client why (it will compile elsewhere).
    Refuse(Refusal),
    /// Tell the client why, but only after [`PAUSE`], in which nothing of it is read: the
    /// client was refused for want of memory that other clients' frames hold (`Busy`), and
    /// one that asks again at once would cost the server a connection and a refusal each time.
    Pause(Refusal),
    /// The connection is gone or unusable; nothing more can be sent.
    Lost(String),
}

/// How long a [`Ending::Pause`] refusal waits.
pub const PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// `outcome`, once the pause of an [`Ending::Pause`] is over.
pub async fn paused<T>(outcome: Result<T, Ending>) -> Result<T, Ending> {
    match outcome {
        Err(Ending::Pause(refusal)) => {
            tokio::time::sleep(PAUSE).await;
            Err(Ending::Refuse(refusal))
        }
        outcome => outcome,
    }
}

/// A refusal for `reason`, saying `detail` to the user.
pub fn refuse(reason: RefusalReason, detail: impl Into<String>) -> Ending {
    Ending::Refuse(Refusal {
        reason,
        detail: detail.into(),
    })
}

/// The compile would pass one of the server's bounds (`Limits`), which `detail` names.
pub fn limit(detail: impl Into<String>) -> Ending {
    refuse(RefusalReason::Limit, detail)
}

/// The request breaks a rule of the protocol (docs/protocol.md).
pub fn invalid(detail: impl std::fmt::Display) -> Ending {
    refuse(
        RefusalReason::InvalidRequest,
        format!("invalid request: {detail}"),
    )
}

/// A frame that did not decode: too long a list is a `Limit`, anything else invalid.
pub fn bad_frame(e: CodecError) -> Ending {
    match e {
        CodecError::TooManyEntries { max } => limit(format!(
            "{e}, refused before reading them (max_manifest_entries is {max})"
        )),
        CodecError::BeyondMemory { .. } => limit(format!("{e} (max_frame_memory)")),
        CodecError::NoMemory { .. } => Ending::Pause(Refusal {
            reason: RefusalReason::Busy,
            detail: format!("{e} (max_frame_memory)"),
        }),
        e => invalid(e),
    }
}

/// The server failed on its side (a disk, a process).
pub fn internal(detail: impl std::fmt::Display) -> Ending {
    refuse(RefusalReason::Internal, format!("server error: {detail}"))
}

/// The server's disk failed it: full (or the quota used up) is [`RefusalReason::DiskFull`],
/// anything else an internal error.
pub fn storage(e: io::Error) -> Ending {
    match is_disk_full(&e) {
        true => disk_full(e),
        false => internal(e),
    }
}

/// The server has no room on its disk for this compile (`detail` says where it found out).
pub fn disk_full(detail: impl std::fmt::Display) -> Ending {
    refuse(
        RefusalReason::DiskFull,
        format!("server's disk is full: {detail}"),
    )
}

impl From<PathError> for Ending {
    fn from(e: PathError) -> Self {
        match e {
            PathError::Io { ref source, .. } if is_disk_full(source) => disk_full(e),
            e => invalid(e),
        }
    }
}

impl From<FillError> for Ending {
    fn from(e: FillError) -> Self {
        match e {
            FillError::Io(e) => storage(e),
            FillError::Path(e) => e.into(),
            e => invalid(e),
        }
    }
}

impl From<ClientGone> for Ending {
    fn from(gone: ClientGone) -> Self {
        Ending::Lost(gone.0)
    }
}
