//! A client connection as a session sees it: frames in and out with the bytes they cost, reads
//! that wait as long as the client keeps sending (a thin link may take minutes for one large
//! frame), and heartbeats while the server works on the client's behalf.

use std::{future::Future, sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use homcc_proto::{
    codec::DEFAULT_MAX_SERVER_FRAME,
    counted::{next_while_receiving, ByteCounts, Counted, Silent},
    ClientMessage, CodecError, Refusal, ServerCodec, ServerMessage,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_util::codec::Framed;

/// One client connection.
#[derive(Debug)]
pub struct Conn {
    frames: Framed<Counted<TcpStream>, ServerCodec>,
    counts: Arc<ByteCounts>,
    /// The longest silence accepted while waiting for the client.
    idle: Duration,
    heartbeat: Duration,
}

/// What the client did while the server worked: left (or sent something it should not have).
#[derive(Debug)]
pub struct ClientGone(pub String);

impl Conn {
    /// Reads client frames of at most `max_frame` bytes.
    pub fn new(stream: TcpStream, max_frame: usize, idle: Duration, heartbeat: Duration) -> Conn {
        let counts = Arc::new(ByteCounts::default());
        let codec = ServerCodec::with_limits(max_frame, DEFAULT_MAX_SERVER_FRAME);
        let frames = Framed::new(Counted::new(stream, counts.clone()), codec);
        Conn {
            frames,
            counts,
            idle,
            heartbeat,
        }
    }

    /// The next frame (`None`: the client closed), or `Silent` after `idle` without a byte.
    pub async fn next(&mut self) -> Result<Option<Result<ClientMessage, CodecError>>, Silent> {
        next_while_receiving(&mut self.frames, &self.counts, self.idle).await
    }

    /// Sends `message`, waiting as long as the client keeps reading: `idle` in which it takes not
    /// one byte gives up, so a client that never reads its result cannot hold it (and its job
    /// root) for longer.
    pub async fn send(&mut self, message: ServerMessage) -> Result<(), CodecError> {
        use std::sync::atomic::Ordering::Relaxed;
        let (counts, idle) = (self.counts.clone(), self.idle);
        let send = self.frames.send(message);
        tokio::pin!(send);
        loop {
            let before = counts.written.load(Relaxed);
            match tokio::time::timeout(idle, &mut send).await {
                Ok(sent) => return sent,
                Err(_) if counts.written.load(Relaxed) > before => continue,
                Err(_) => {
                    let why = format!("the client read nothing for {} s", idle.as_secs());
                    return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, why).into());
                }
            }
        }
    }

    /// Sends `refusal` before reading anything, then [`Conn::close_unread`].
    pub async fn refuse_at_once(mut self, refusal: Refusal) {
        if self
            .frames
            .send(ServerMessage::Refused(refusal))
            .await
            .is_ok()
        {
            self.close_unread().await;
        }
    }

    /// After a last frame sent while the client's own frames are left unread: ends the sending
    /// side, then reads and drops what the client sends (at most `idle`) until it closes. Closing
    /// with unread bytes would reset the connection and could lose the last frame on the way.
    pub async fn close_unread(&mut self) {
        let _ = self.frames.get_mut().shutdown().await;
        let mut sink = [0u8; 4096];
        let drain = async { while let Ok(1..) = self.frames.get_mut().read(&mut sink).await {} };
        let _ = tokio::time::timeout(self.idle, drain).await;
    }

    /// Reads client frames of at most `max_frame` bytes from the next one on.
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.frames.codec_mut().set_max_in(max_frame);
    }

    /// The longest silence accepted, for messages.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// (bytes read, bytes written) so far.
    pub fn bytes(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.counts.read.load(Relaxed),
            self.counts.written.load(Relaxed),
        )
    }

    /// Awaits `work`, sending a heartbeat every interval so the client knows the server is alive.
    /// A client that closes the connection or sends anything meanwhile ends the wait (and drops
    /// `work`, which kills a running compiler).
    pub async fn with_heartbeats<F: Future>(&mut self, work: F) -> Result<F::Output, ClientGone> {
        tokio::pin!(work);
        let mut beat = tokio::time::interval(self.heartbeat);
        beat.tick().await;
        loop {
            tokio::select! {
                done = &mut work => return Ok(done),
                _ = beat.tick() => {
                    self.frames.send(ServerMessage::Heartbeat).await.map_err(|e| ClientGone(e.to_string()))?;
                }
                _ = self.frames.next() => return Err(ClientGone("the client went away".into())),
            }
        }
    }
}
