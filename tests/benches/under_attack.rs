//! Benchmark (prints figures; not a test): how long a normal compile through homcc takes while
//! homccd, with its default settings, is under each resource attack of docs/security.md, against
//! its usual time. The attackers are raw clients from other loopback addresses (127.0.0.2 on),
//! so the per-address connection bound does not stand between them and the normal client. They
//! run on the same CPUs as the server; those that send bulk data send it at most as fast as a
//! 1 Gbit/s link each (125 MB/s), as an attacker on the LAN could: loopback would let them flood
//! the machine's memory bandwidth instead, which measures the loopback rather than homccd.
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p homcc-tests --bench under_attack`
//! (`ATTACKS=4,6` runs only those attacks; `SHOW_TIMES=1` prints every compile's time;
//! `ATTACKERS_NICE=1` runs the attackers at nice 19, closer to attackers on other machines:
//! they then take only the CPU the server and the normal client leave.)

use std::{
    cell::Cell,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::{mpsc, Arc},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use futures_util::SinkExt;
use homcc_proto::{
    codec::{ClientCodec, DEFAULT_MAX_SERVER_FRAME},
    Chunk, ChunkFile, ChunkRef, ClientMessage, Compression, Digest,
};
use homcc_tests::{
    homcc_lines,
    raw::{body, frame, gxx_identity, next_answer, trickle_until, Answer, Conversation, Raw},
    Project, TestServer,
};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::{codec::Framed, sync::CancellationToken};

/// Normal compiles timed in each state.
const SAMPLES: usize = 15;

fn main() {
    let server = TestServer::fresh(|_| {});
    let victim = Project::new();
    let mut count = 0;
    let mut normal = || {
        count += 1;
        normal_compile(&server, &victim, count)
    };
    normal();
    let usual = median((0..SAMPLES).map(|_| normal()).collect());
    println!("homccd defaults; a normal compile (homcc gcc -c, one new 2 KB C file) usually takes {usual:.3} s (median of {SAMPLES})");
    println!(
        "{:<54} {:>9} {:>7}",
        "attack (docs/security.md)", "median s", "ratio"
    );
    let attacks: [(&str, Attack); 6] = [
        ("2 one file under 60,000 names, 2 clients", hard_links),
        ("3 60 chunks 2000 deep, 2 clients in a loop", deep_chunks),
        ("4 uploads trickled at 1 B/s on every place", slow_uploads),
        (
            "5 1,000,000-entry manifests, 2 clients in a loop",
            huge_manifests,
        ),
        (
            "6 15 partial 60 MiB frames from 5 addresses",
            partial_frames,
        ),
        ("10 64 MiB results never read, 2 clients", unread_results),
    ];
    // `ATTACKS=4,6` runs only those (by the number that starts their name).
    let only = std::env::var("ATTACKS").ok();
    let chosen = |name: &str| {
        only.as_deref().is_none_or(|only| {
            let number = name.split(' ').next().unwrap_or_default();
            only.split(',').any(|n| n.trim() == number)
        })
    };
    for (name, attack) in attacks.into_iter().filter(|(name, _)| chosen(name)) {
        let mut crowd = Crowd::default();
        attack(server.addr, &mut crowd);
        // Each attacker says when its attack is under way.
        if !crowd.wait_until_engaged(Duration::from_secs(60)) {
            println!("    (not every attacker got under way within 60 s)");
        }
        let times: Vec<f64> = (0..SAMPLES).map(|_| normal()).collect();
        crowd.stop();
        if show_times() {
            println!("    {times:.3?}");
        }
        let during = median(times);
        println!("{name:<54} {during:>9.3} {:>6.1}x", during / usual);
    }
}

type Attack = fn(SocketAddr, &mut Crowd);

/// Seconds one compile of a new file took; prints homcc's line if it did not stay remote.
fn normal_compile(server: &TestServer, victim: &Project, n: usize) -> f64 {
    let name = format!("v{n}.c");
    let body: String = (0..40)
        .map(|i| format!("int f{n}_{i}(int x) {{ return x * {i} + {n}; }}\n"))
        .collect();
    victim.write(&name, &body);
    let started = Instant::now();
    let out = victim
        .homcc_command(&["--host", &server.host()], "gcc", &["-c", &name])
        .output()
        .unwrap();
    let took = started.elapsed().as_secs_f64();
    for line in homcc_lines(&out.stderr) {
        println!("    (compile {n}: {line})");
    }
    if show_times() {
        let mine =
            (server.records().into_iter().rev()).find(|r| r.output.contains(&format!("v{n}.")));
        if let Some(r) = mine {
            println!(
                "    {took:.3} {} queued {} compile {} ms",
                r.outcome, r.queued_ms, r.compile_ms
            );
        }
    }
    took
}

/// `SHOW_TIMES=1`: every compile's time and the server's record of it, as well as the median.
fn show_times() -> bool {
    static SHOW: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SHOW.get_or_init(|| std::env::var_os("SHOW_TIMES").is_some())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The attackers of one attack.
#[derive(Default)]
struct Crowd {
    stop: CancellationToken,
    threads: Vec<JoinHandle<()>>,
    /// One message from each attacker once its attack is under way.
    engaged: Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>,
}

/// One attacker thread: where it connects from, its number in its crowd, and when to stop.
struct Attacker {
    from: IpAddr,
    index: usize,
    stop: CancellationToken,
    engaged: Cell<Option<mpsc::Sender<()>>>,
}

impl Attacker {
    fn stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Its attack is under way (said once).
    fn engaged(&self) {
        if let Some(tx) = self.engaged.take() {
            let _ = tx.send(());
        }
    }
}

impl Crowd {
    /// `count` attacker threads, the `i`-th from 127.0.0.(2 + i % addresses), each running
    /// `one` until stopped.
    fn spawn(
        &mut self,
        count: usize,
        addresses: usize,
        one: impl Fn(&Attacker) + Send + Clone + 'static,
    ) {
        let (tx, _) = self.engaged.get_or_insert_with(mpsc::channel);
        for index in 0..count {
            let attacker = Attacker {
                from: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (index % addresses) as u8)),
                index,
                stop: self.stop.clone(),
                engaged: Cell::new(Some(tx.clone())),
            };
            let one = one.clone();
            self.threads.push(std::thread::spawn(move || {
                if std::env::var_os("ATTACKERS_NICE").is_some() {
                    // Linux: this thread only. An attacker on another machine takes none of
                    // the server's CPU; here it still takes what the server leaves.
                    // SAFETY: setpriority(2) on the calling thread; no memory is involved.
                    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
                }
                one(&attacker)
            }));
        }
    }

    /// Whether every attacker said it is under way within `limit`.
    fn wait_until_engaged(&mut self, limit: Duration) -> bool {
        let Some((tx, rx)) = self.engaged.take() else {
            return true;
        };
        drop(tx);
        let deadline = Instant::now() + limit;
        (0..self.threads.len()).all(|_| {
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .is_ok()
        })
    }

    fn stop(self) {
        self.stop.cancel();
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A raw client connection from `from`.
async fn connect_from(from: IpAddr, addr: SocketAddr) -> std::io::Result<Raw> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    let stream = socket.connect(addr).await?;
    Ok(Framed::new(
        stream,
        ClientCodec::new(DEFAULT_MAX_SERVER_FRAME),
    ))
}

/// An honest compile of `source` (as `a.cpp` in a directory of its own) reading `files` too.
fn conversation(source: &[u8], files: &[(String, Vec<u8>)]) -> Conversation {
    let cwd = PathBuf::from(format!("/attack/{}", std::process::id()));
    let mut all = vec![(cwd.join("a.cpp"), source.to_vec())];
    all.extend(files.iter().map(|(n, c)| (cwd.join(n), c.clone())));
    Conversation::new(
        gxx_identity(),
        &cwd,
        &["-c", "a.cpp", "-o", "a.o"],
        &all,
        &[cwd.join("a.o")],
        Compression::None,
    )
}

/// A connection from `from` that has sent the request of `conversation`.
async fn ask(from: IpAddr, addr: SocketAddr, conversation: &Conversation) -> Option<Raw> {
    let mut conn = connect_from(from, addr).await.ok()?;
    let request = ClientMessage::Compile(Box::new(conversation.request.clone()));
    conn.send(request).await.ok()?;
    Some(conn)
}

/// Runs `conversation` again and again until stopped.
fn repeat(attacker: &Attacker, addr: SocketAddr, conversation: &Conversation) {
    runtime().block_on(async {
        while !attacker.stopped() {
            if let Some(mut conn) = ask(attacker.from, addr, conversation).await {
                if let Answer::Need(need) = next_answer(&mut conn).await {
                    attacker.engaged();
                    let _ = conversation.upload(&mut conn, &need).await;
                    let _ = next_answer(&mut conn).await;
                }
            }
        }
    });
}

fn hard_links(addr: SocketAddr, crowd: &mut Crowd) {
    let header = b"int shared_header_value = 7;\n".to_vec();
    let files: Vec<(String, Vec<u8>)> = (0..60_000)
        .map(|i| (format!("h{i}.h"), header.clone()))
        .collect();
    let attack = conversation(b"int attacked;\n", &files);
    crowd.spawn(2, 2, move |attacker| repeat(attacker, addr, &attack));
}

fn deep_chunks(addr: SocketAddr, crowd: &mut Crowd) {
    let mut attack = conversation(b"int attacked;\n", &[]);
    for i in 0..60 {
        attack.list_chunk_by_digest(Chunk {
            dir: format!("/x{i}{}", "/d".repeat(2000)),
            files: Vec::new(),
        });
    }
    crowd.spawn(2, 2, move |attacker| repeat(attacker, addr, &attack));
}

fn slow_uploads(addr: SocketAddr, crowd: &mut Crowd) {
    // Every place of the default limit and queue (2 x (CPUs + 2)), from two addresses.
    let places = 2 * (std::thread::available_parallelism().map_or(1, |n| n.get()) + 2);
    crowd.spawn(places, 2, move |attacker| {
        let header = format!("int trickled_{};\n", attacker.index)
            .repeat(1 << 14)
            .into_bytes();
        let attack = conversation(b"int attacked;\n", &[("h.h".into(), header.clone())]);
        let blob = ClientMessage::Blob(attack.blobs[&Digest::of(&header)].clone());
        let bytes = frame(&body(&blob));
        runtime().block_on(async {
            while !attacker.stopped() {
                let Some(mut conn) = ask(attacker.from, addr, &attack).await else {
                    continue;
                };
                if let Answer::Need(_) = next_answer(&mut conn).await {
                    attacker.engaged();
                    let gap = Duration::from_secs(1);
                    trickle_until(&mut conn, &bytes, gap, &attacker.stop).await;
                }
            }
        });
    });
}

fn huge_manifests(addr: SocketAddr, crowd: &mut Crowd) {
    let mut attack = conversation(b"int attacked;\n", &[]);
    let chunk = Chunk {
        dir: "/attack/many".into(),
        files: (0..1_000_000)
            .map(|i| ChunkFile {
                name: format!("f{i:07}.h"),
                digest: Digest::of(b""),
                size: 0,
            })
            .collect(),
    };
    attack.request.manifest.push(ChunkRef {
        digest: chunk.digest(),
        inline: Some(chunk),
    });
    let bytes = Arc::new(frame(&body(&ClientMessage::Compile(Box::new(
        attack.request,
    )))));
    crowd.spawn(2, 2, move |attacker| {
        runtime().block_on(async {
            while !attacker.stopped() {
                if let Ok(mut conn) = connect_from(attacker.from, addr).await {
                    if send_paced(conn.get_mut(), &bytes).await.is_ok() {
                        attacker.engaged();
                        let _ = next_answer(&mut conn).await;
                    }
                }
            }
        })
    });
}

fn partial_frames(addr: SocketAddr, crowd: &mut Crowd) {
    crowd.spawn(15, 5, move |attacker| {
        let mut half = (60u32 << 20).to_be_bytes().to_vec();
        half.resize(4 + (30 << 20), 0);
        runtime().block_on(async {
            while !attacker.stopped() {
                let Ok(mut conn) = connect_from(attacker.from, addr).await else {
                    continue;
                };
                let (mut from_server, mut to_server) = conn.get_mut().split();
                let send = send_paced(&mut to_server, &half);
                tokio::pin!(send);
                let (mut sent, mut answer) = (false, [0; 1]);
                // Under way once its half frame is sent (and held), or refused: then it asks
                // again at once. Held until the server answers or gives up on it, or the
                // benchmark moves on.
                loop {
                    tokio::select! {
                        _ = attacker.stop.cancelled() => break,
                        done = &mut send, if !sent => match done {
                            Ok(()) => (sent, _) = (true, attacker.engaged()),
                            Err(_) => break,
                        },
                        _ = from_server.read(&mut answer) => {
                            attacker.engaged();
                            break;
                        }
                    }
                }
            }
        })
    });
}

fn unread_results(addr: SocketAddr, crowd: &mut Crowd) {
    crowd.spawn(2, 2, move |attacker| {
        let source = format!("char big_{}[64 << 20] = {{1}};\n", attacker.index);
        let attack = conversation(source.as_bytes(), &[]);
        runtime().block_on(async {
            while !attacker.stopped() {
                let Some(mut conn) = ask(attacker.from, addr, &attack).await else {
                    continue;
                };
                if let Answer::Need(need) = next_answer(&mut conn).await {
                    let _ = attack.upload(&mut conn, &need).await;
                    attacker.engaged();
                }
                // Never read: held past the server's idle timeout (60 s), then asked again.
                tokio::select! {
                    _ = attacker.stop.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_secs(70)) => {}
                }
            }
        })
    });
}

/// Sends `bytes` at most as fast as a 1 Gbit/s link (in 1 MiB pieces).
async fn send_paced(to: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> std::io::Result<()> {
    const PER_SECOND: f64 = 125e6;
    let started = Instant::now();
    let mut sent = 0;
    for piece in bytes.chunks(1 << 20) {
        to.write_all(piece).await?;
        sent += piece.len();
        let due = Duration::from_secs_f64(sent as f64 / PER_SECOND);
        tokio::time::sleep(due.saturating_sub(started.elapsed())).await;
    }
    Ok(())
}
