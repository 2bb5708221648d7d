//! The connection to one server: frames both ways, read while writing (the server may answer
//! before it has read a frame), each wait bounded by its timeout.

use std::{
    sync::Arc,
    task::Poll,
    time::{Duration, Instant},
};

use futures_util::{ready, SinkExt, StreamExt};
use homcc_proto::{
    codec::{DEFAULT_MAX_CLIENT_FRAME, DEFAULT_MAX_SERVER_FRAME},
    counted::{next_while_receiving, ByteCounts, Counted, Silent},
    ClientCodec, ClientMessage, CodecError, ServerMessage,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

use super::Failure;

/// What the server's side of the connection yields: a frame, an error, or `None` once closed.
type Answer = Option<Result<ServerMessage, CodecError>>;

/// The connection to the server. The server may answer before it has read what the client is
/// sending (it refuses a frame it has no memory for, or a request it cannot take, from the
/// frame's first bytes) and then reads no further, so the client reads while it writes: a
/// frame that comes during a send is kept as `early`, the next frame received. A refusal (or
/// the connection's end) also ends that send and every later one; any other frame (the
/// challenge of a server that wants a token, sent on connecting) lets the send go on.
pub struct Conn {
    frames: Framed<Counted<Box<dyn Stream>>, ClientCodec>,
    counts: Arc<ByteCounts>,
    early: Option<Answer>,
}

/// What a connection runs over: a TCP connection, or a unix socket an SSH master forwards.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The setting that bounds a whole remote compile.
pub const REQUEST_TIMEOUT: &str = "compilation_request_timeout";

/// How long the next frame may keep the client waiting, and what to say when it does.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    /// The longest silence (not the longest frame: a large one keeps arriving on a thin link).
    pub silence: Duration,
    /// The setting that gave `silence`.
    pub timeout: &'static str,
    pub during: &'static str,
}

impl Conn {
    /// Over `stream`: a TCP connection, or an SSH stream.
    pub fn new(stream: Box<dyn Stream>) -> Conn {
        let counts = Arc::new(ByteCounts::default());
        let frames = Framed::new(
            Counted::new(stream, counts.clone()),
            ClientCodec::with_limits(DEFAULT_MAX_SERVER_FRAME, DEFAULT_MAX_CLIENT_FRAME),
        );
        Conn {
            frames,
            counts,
            early: None,
        }
    }

    /// (bytes sent, bytes received) so far.
    pub fn bytes(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.counts.written.load(Relaxed),
            self.counts.read.load(Relaxed),
        )
    }

    /// Whether the server has refused (or closed) during a send (see [`Conn`]): nothing more
    /// is sent.
    pub fn answered(&self) -> bool {
        self.early.as_ref().is_some_and(ends_sending)
    }

    /// Sends `message` while reading: a frame that comes first is kept for [`Conn::receive`],
    /// and a refusal ends the send. Nothing is sent once the server has refused.
    pub async fn send(&mut self, message: ClientMessage) -> Result<(), Failure> {
        if self.answered() {
            return Ok(());
        }
        let (frames, early) = (&mut self.frames, &mut self.early);
        let mut unsent = Some(message);
        std::future::poll_fn(|cx| {
            if early.is_none() {
                if let Poll::Ready(answer) = frames.poll_next_unpin(cx) {
                    let ends = ends_sending(&answer);
                    *early = Some(answer);
                    if ends {
                        return Poll::Ready(Ok(()));
                    }
                }
            }
            if unsent.is_some() {
                ready!(frames.poll_ready_unpin(cx))?;
                frames.start_send_unpin(unsent.take().expect("checked above"))?;
            }
            frames.poll_flush_unpin(cx)
        })
        .await
        .map_err(codec_failure)
    }

    /// The server's next frame, or why none came: within `wait`, and before `deadline`, the
    /// end of the whole remote compile (`request_timeout` after it began).
    pub async fn receive(
        &mut self,
        wait: Wait,
        deadline: Instant,
        request_timeout: Duration,
    ) -> Result<ServerMessage, Failure> {
        if let Some(answer) = self.early.take() {
            return answered(answer);
        }
        let next = next_while_receiving(&mut self.frames, &self.counts, wait.silence);
        match tokio::time::timeout_at(deadline.into(), next).await {
            Err(_) => Err(Failure::TimedOut {
                timeout: REQUEST_TIMEOUT,
                after: request_timeout,
                during: "before the result came",
            }),
            Ok(Err(Silent)) => Err(Failure::TimedOut {
                timeout: wait.timeout,
                after: wait.silence,
                during: wait.during,
            }),
            Ok(Ok(answer)) => answered(answer),
        }
    }
}

/// Whether `answer`, come during a send, ends it: a refusal, or the connection's end.
fn ends_sending(answer: &Answer) -> bool {
    !matches!(answer, Some(Ok(message)) if !matches!(message, ServerMessage::Refused(_)))
}

fn answered(answer: Answer) -> Result<ServerMessage, Failure> {
    match answer {
        None => Err(Failure::Lost("the server closed the connection".into())),
        Some(Err(e)) => Err(codec_failure(e)),
        Some(Ok(message)) => Ok(message),
    }
}

fn codec_failure(e: CodecError) -> Failure {
    match e {
        CodecError::Io(e) => Failure::Lost(e.to_string()),
        e => Failure::Protocol(e.to_string()),
    }
}
