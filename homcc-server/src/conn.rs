//! A client connection as a session sees it: frames in and out with the bytes they cost, reads
//! that wait as long as the client keeps sending (a thin link may take minutes for one large
//! frame), and heartbeats while the server works on the client's behalf.

use std::{
    future::Future,
    sync::{atomic::Ordering::Relaxed, Arc},
    time::Duration,
};

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use homcc_proto::{
    codec::{FrameMemory, DEFAULT_MAX_SERVER_FRAME},
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

/// The least an upload must bring: `rate` bytes a second on average, from `grace` after the
/// server asked for files on. A thin link gets the grace to start and then sends far faster; a
/// client trickling bytes to hold its place (each byte within the idle timeout) falls behind.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    began: tokio::time::Instant,
    read_before: u64,
    grace: Duration,
    rate: u64,
}

/// The largest read buffer kept between frames.
const KEEP_BUFFER: usize = 1 << 20;

/// The longest grace an upload gets before its rate counts.
const MAX_GRACE: Duration = Duration::from_secs(10);

/// Bytes per second read (and dropped) from a client after its refusal, see
/// [`Conn::close_unread`]: enough for what was on the way when the client read the refusal.
const DRAIN_RATE: f64 = (1 << 20) as f64;

impl Pace {
    /// When the bytes read so far (`read`, since the pace began) are too few, or `None` if any
    /// rate will do.
    fn due(&self, read: u64) -> Option<tokio::time::Instant> {
        if self.rate == 0 {
            return None;
        }
        let ahead = Duration::try_from_secs_f64(read as f64 / self.rate as f64).ok()?;
        self.began.checked_add(self.grace.checked_add(ahead)?)
    }
}

/// Why an upload ended without its next frame.
#[derive(Debug)]
pub enum Stalled {
    /// Not one byte within the idle timeout.
    Silent,
    /// It fell behind its [`Pace`], averaging less than this many bytes a second.
    Slow(u64),
}

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
        let frame = next_while_receiving(&mut self.frames, &self.counts, self.idle).await;
        // A large frame's buffer is not kept for the small ones that follow.
        let buffer = self.frames.read_buffer_mut();
        if buffer.capacity() > KEEP_BUFFER {
            *buffer = BytesMut::from(&buffer[..]);
        }
        frame
    }

    /// Takes each frame's memory from `memory` while it is read (`MessageCodec::set_memory`).
    pub fn set_memory(&mut self, memory: Arc<FrameMemory>) {
        self.frames.codec_mut().set_memory(memory);
    }

    /// A pace of `rate` bytes a second from now on, after a grace of the idle timeout (at most
    /// 10 s).
    pub fn pace(&self, rate: u64) -> Pace {
        Pace {
            began: tokio::time::Instant::now(),
            read_before: self.counts.read.load(Relaxed),
            grace: self.idle.min(MAX_GRACE),
            rate,
        }
    }

    /// The next frame as [`Conn::next`] gives it, unless the bytes read since `pace` began fall
    /// behind it first.
    pub async fn next_paced(
        &mut self,
        pace: &Pace,
    ) -> Result<Option<Result<ClientMessage, CodecError>>, Stalled> {
        let counts = self.counts.clone();
        let read = || counts.read.load(Relaxed) - pace.read_before;
        let Some(mut due) = pace.due(read()) else {
            return self.next().await.map_err(|_| Stalled::Silent);
        };
        // One read for the whole frame, so that its idle timeout runs on.
        let next = self.next();
        tokio::pin!(next);
        loop {
            tokio::select! {
                frame = &mut next => return frame.map_err(|_| Stalled::Silent),
                _ = tokio::time::sleep_until(due) => {
                    let (read, now) = (read(), tokio::time::Instant::now());
                    due = match pace.due(read) {
                        // Bytes that came meanwhile move the due time on.
                        Some(later) if later > now => later,
                        Some(_) if read > 0 => return Err(Stalled::Slow(pace.rate)),
                        // Silence is the idle timeout's to end.
                        _ => now + pace.grace,
                    };
                }
            }
        }
    }

    /// Sends `message`, waiting as long as the client keeps reading: `idle` in which it takes not
    /// one byte gives up, so a client that never reads its result cannot hold it (and its job
    /// root) for longer.
    pub async fn send(&mut self, message: ServerMessage) -> Result<(), CodecError> {
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
    /// side, then reads and drops what the client sends until it closes, for at most `idle`.
    /// Closing with unread bytes would reset the connection and could lose the last frame on
    /// the way. A client that reads while it writes (as homcc does) sees the refusal and closes
    /// at once; one that goes on sending is read at no more than [`DRAIN_RATE`], so refused
    /// frames cost the server next to nothing, however many come.
    pub async fn close_unread(&mut self) {
        let _ = self.frames.get_mut().shutdown().await;
        let mut sink = vec![0u8; 64 << 10];
        let started = tokio::time::Instant::now();
        let mut drained = 0u64;
        let drain = async {
            while let Ok(read @ 1..) = self.frames.get_mut().read(&mut sink).await {
                drained += read as u64;
                let due = Duration::from_secs_f64(drained as f64 / DRAIN_RATE);
                tokio::time::sleep(due.saturating_sub(started.elapsed())).await;
            }
        };
        let _ = tokio::time::timeout(self.idle, drain).await;
    }

    /// Reads client frames of at most `max_frame` bytes from the next one on.
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.frames.codec_mut().set_max_in(max_frame);
    }

    /// Refuses a frame listing more than `max` manifest files or directories before reading
    /// them (`MessageCodec::set_max_entries`).
    pub fn set_max_entries(&mut self, max: usize) {
        self.frames.codec_mut().set_max_entries(max);
    }

    /// The longest silence accepted, for messages.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// (bytes read, bytes written) so far.
    pub fn bytes(&self) -> (u64, u64) {
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
                frame = self.frames.next() => match frame {
                    // Sent over SSH after an empty `Need`: nothing to do.
                    Some(Ok(ClientMessage::Ready)) => {}
                    _ => return Err(ClientGone("the client went away".into())),
                },
            }
        }
    }
}
