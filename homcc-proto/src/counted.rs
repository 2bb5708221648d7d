//! A stream wrapper that counts the bytes read and written: what a compile cost on the wire, and
//! whether a slow peer is still sending (timeouts measure silence, not the size of a frame).

use std::{
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use futures_util::{Stream, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Instant,
};

/// Bytes that crossed one connection, and when the last were read.
#[derive(Debug)]
pub struct ByteCounts {
    pub read: AtomicU64,
    pub written: AtomicU64,
    began: Instant,
    /// When the last byte was read, in milliseconds after `began`.
    last_read_ms: AtomicU64,
}

impl Default for ByteCounts {
    fn default() -> Self {
        ByteCounts {
            read: AtomicU64::new(0),
            written: AtomicU64::new(0),
            began: Instant::now(),
            last_read_ms: AtomicU64::new(0),
        }
    }
}

impl ByteCounts {
    /// Bytes read so far.
    pub fn read_total(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// When the last byte was read (the counts' creation, before any).
    pub fn last_read(&self) -> Instant {
        self.began + Duration::from_millis(self.last_read_ms.load(Ordering::Relaxed))
    }

    fn note_read(&self, n: u64) {
        if n > 0 {
            self.read.fetch_add(n, Ordering::Relaxed);
            let ms = u64::try_from(self.began.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.last_read_ms.store(ms, Ordering::Relaxed);
        }
    }
}

/// Silence from the peer that lasted the whole allowed time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Silent;

/// The next item of `frames`, waiting as long as bytes keep arriving: only `idle` without a
/// single byte (counted in `counts`) gives up. A large frame on a thin link takes as long as
/// it takes. Reading a framed stream is cancel-safe, so waiting again loses nothing.
pub async fn next_while_receiving<S: Stream + Unpin>(
    frames: &mut S,
    counts: &ByteCounts,
    idle: Duration,
) -> Result<Option<S::Item>, Silent> {
    let called = Instant::now();
    // Silence counts from the last byte read, or from the call if that came before.
    let deadline = || counts.last_read().max(called) + idle;
    let mut next = frames.next();
    loop {
        match tokio::time::timeout_at(deadline(), &mut next).await {
            Ok(item) => return Ok(item),
            Err(_) if deadline() > Instant::now() => continue,
            Err(_) => return Err(Silent),
        }
    }
}

/// `S`, counting into shared [`ByteCounts`].
#[derive(Debug)]
pub struct Counted<S> {
    inner: S,
    counts: Arc<ByteCounts>,
}

impl<S> Counted<S> {
    pub fn new(inner: S, counts: Arc<ByteCounts>) -> Self {
        Counted { inner, counts }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.counts.note_read((buf.filled().len() - before) as u64);
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            self.counts.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures_util::SinkExt;
    use tokio::io::AsyncWriteExt;
    use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

    use super::*;

    /// A frame whose bytes arrive one by one, `gap` apart, over a reader counted into `counts`.
    fn trickled(
        gap: Duration,
        counts: Arc<ByteCounts>,
    ) -> FramedRead<Counted<tokio::io::DuplexStream>, LengthDelimitedCodec> {
        let (mut tx, rx) = tokio::io::duplex(64);
        tokio::spawn(async move {
            let mut frame = Vec::new();
            let mut framed = FramedWrite::new(&mut frame, LengthDelimitedCodec::new());
            framed
                .send(Bytes::from_static(b"0123456789"))
                .await
                .unwrap();
            for byte in frame {
                tokio::time::sleep(gap).await;
                tx.write_all(&[byte]).await.unwrap();
            }
        });
        FramedRead::new(Counted::new(rx, counts), LengthDelimitedCodec::new())
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_frame_is_waited_for_while_bytes_arrive() {
        let counts = Arc::new(ByteCounts::default());
        let mut frames = trickled(Duration::from_millis(600), counts.clone());
        // 14 bytes, 600 ms apart: 8.4 s for a frame, never 1 s of silence.
        let started = tokio::time::Instant::now();
        let got = next_while_receiving(&mut frames, &counts, Duration::from_secs(1)).await;
        assert_eq!(got.unwrap().unwrap().unwrap(), &b"0123456789"[..]);
        assert!(started.elapsed() > Duration::from_secs(8));
        assert_eq!(counts.read_total(), 14);
    }

    #[tokio::test(start_paused = true)]
    async fn silence_ends_the_wait() {
        let counts = Arc::new(ByteCounts::default());
        let mut frames = trickled(Duration::from_secs(3), counts.clone());
        let got = next_while_receiving(&mut frames, &counts, Duration::from_secs(1)).await;
        assert_eq!(got.unwrap_err(), Silent);
    }

    /// Silence is measured from the last byte: a frame that stops 3 bytes in, 1.8 s after the
    /// wait began, is given up at 2.8 s with an idle time of 1 s (not at the next whole second).
    #[tokio::test(start_paused = true)]
    async fn silence_counts_from_the_last_byte() {
        let counts = Arc::new(ByteCounts::default());
        let (mut tx, rx) = tokio::io::duplex(64);
        tokio::spawn(async move {
            for byte in [0u8, 0, 0] {
                tokio::time::sleep(Duration::from_millis(600)).await;
                tx.write_all(&[byte]).await.unwrap();
            }
            std::future::pending::<()>().await;
        });
        let mut frames = FramedRead::new(
            Counted::new(rx, counts.clone()),
            LengthDelimitedCodec::new(),
        );
        let started = tokio::time::Instant::now();
        let got = next_while_receiving(&mut frames, &counts, Duration::from_secs(1)).await;
        assert_eq!(got.unwrap_err(), Silent);
        assert_eq!(started.elapsed().as_millis(), 2800);
    }
}
