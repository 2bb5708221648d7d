//! Which host compiles a prepared job: a host at a time (`Round::next_host`), each asked once
//! (`ask`), until one answers with the compiler's verdict, the tries run out or no host is left.

use std::time::{Duration, Instant};

use homcc_proto::CompileResult;

use crate::{
    config::Settings,
    hosts::Host,
    known::KnownChunks,
    local::Instead,
    say::{debug, verbose},
    session::{compile_on, Failure, Prepared, Target, Timeouts, Traffic},
    slots::{poll_interval, Pick, Slot, Slots},
};

/// A host's verdict on a job: the result, which host (its index), what crossed the wire and how
/// long the remote part took.
pub(super) struct Answer {
    pub result: CompileResult,
    pub host: usize,
    pub traffic: Traffic,
    pub remote: Duration,
}

/// Compiles `prepared` on the first host that takes it; why the command must run locally when
/// none does.
pub(super) async fn on_a_host(settings: &Settings, prepared: &Prepared) -> Result<Answer, Instead> {
    let mut round = Round::new(settings);
    while round.attempts < settings.tries {
        let (index, _slot, alone) = match round.next_host(settings).await {
            Taken::Host(index, slot, alone) => (index, slot, alone),
            Taken::Local => return Err(local_instead(settings)),
            Taken::Nothing(reasons) => {
                round.failures.extend(reasons);
                break;
            }
        };
        match ask(settings, &mut round, index, alone, prepared).await {
            Some(Ok((result, traffic, remote))) => {
                return Ok(Answer {
                    result,
                    host: index,
                    traffic,
                    remote,
                })
            }
            Some(Err(failure)) if round.record(settings, index, &failure) => break,
            Some(Err(_)) | None => {}
        }
    }
    Err(Instead::Fallback(round.failures.join("; ")))
}

/// Asks `hosts[index]` to compile, unless it is backing off after a failure (`None`, and the
/// round notes why). A host of unknown health is tried by one process at a time; the others then
/// see how it went.
async fn ask(
    settings: &Settings,
    round: &mut Round,
    index: usize,
    alone: bool,
    prepared: &Prepared,
) -> Option<Result<(CompileResult, Traffic, Duration), Failure>> {
    let host = &settings.hosts[index];
    let key = host.key();
    let slots = settings.slots.as_ref();
    let probe = match slots {
        Some(slots) => {
            let deadline = Instant::now() + 2 * settings.connect_timeout;
            slots.probe(&key, deadline).await
        }
        None => None,
    };
    if let Some((left, reason)) = slots.and_then(|s| s.backing_off(&key)) {
        let left = left.as_secs() + 1;
        round
            .failures
            .push(format!("{host}: skipped for {left} s after: {reason}"));
        round.failed[index] = true;
        return None;
    }
    // The first look at the hosts asks a full one to say so rather than queue the compile, as
    // long as another host may have a free slot.
    let queue = round.all_were_full || alone;
    Some(attempt(settings, host, prepared, queue, probe).await)
}

/// After a failure of `host`: if it is the host's fault, every homcc process skips it for a
/// while.
fn record_failure(settings: &Settings, host: &Host, failure: &Failure) {
    if let (Some(slots), Some(back_off)) = (&settings.slots, failure.back_off()) {
        slots.record_failure(&host.key(), back_off, &failure.to_string());
        let skip = back_off.as_secs();
        debug(
            settings,
            &format!("{host} {failure}; every homcc skips it for {skip} s"),
        );
    }
}

/// What to do when every host left answered busy.
enum Room {
    /// Ask the hosts again (after a pause), now ready to wait in their queues.
    AskAgain,
    /// Compile here: `localhost` is a host and has a free slot.
    Local,
    /// `compilation_request_timeout` has passed: why the compile gives up.
    TimedOut(String),
}

/// What the walks over the hosts have learnt: which failed (not asked again) and which were full
/// in this walk, the tries spent, and why each host did not compile the job.
#[derive(Debug)]
struct Round {
    /// Every host left was full in an earlier walk: from then on, each is asked to queue.
    all_were_full: bool,
    failed: Vec<bool>,
    /// The busy answer of each host that gave one in this walk.
    busy: Vec<Option<String>>,
    /// Failures so far (a busy answer is none): `remote_compilation_tries` bounds them.
    attempts: usize,
    failures: Vec<String>,
    /// Until when full hosts are asked again: `compilation_request_timeout` from the start.
    wait_until: Instant,
}

impl Round {
    fn new(settings: &Settings) -> Round {
        let hosts = settings.hosts.len();
        Round {
            all_were_full: false,
            failed: vec![false; hosts],
            busy: vec![None; hosts],
            attempts: 0,
            failures: Vec::new(),
            wait_until: Instant::now() + settings.request_timeout,
        }
    }

    /// The host to ask next: one with a free slot that has neither failed nor been full in this
    /// walk; when every host left is full, after a pause, the next walk.
    async fn next_host(&mut self, settings: &Settings) -> Taken {
        let slots = settings.slots.as_ref();
        loop {
            return match take_host(settings, slots, &self.skip(), self.wait_until).await {
                Taken::Nothing(mut reasons) if self.any_busy() => {
                    match self.wait_for_room(settings).await {
                        Room::AskAgain => continue,
                        Room::Local => Taken::Local,
                        Room::TimedOut(line) => {
                            reasons.push(line);
                            Taken::Nothing(reasons)
                        }
                    }
                }
                taken => taken,
            };
        }
    }

    /// Notes how `hosts[index]` failed: a busy host is asked again in the next walk, any other
    /// failure spends a try and is not. True if no host would take the job (every homccd applies
    /// the same argument policy).
    fn record(&mut self, settings: &Settings, index: usize, failure: &Failure) -> bool {
        let host = &settings.hosts[index];
        if failure.is_busy() {
            debug(settings, &format!("{host} {failure}: asking another host"));
            if let Some(slots) = &settings.slots {
                slots.record_busy(&host.key());
            }
            self.busy[index] = Some(format!("{host} {failure}"));
            return false;
        }
        self.attempts += 1;
        self.failed[index] = true;
        self.failures.push(format!("{host} {failure}"));
        failure.is_forbidden()
    }

    /// The hosts not to pick in this walk.
    fn skip(&self) -> Vec<bool> {
        (self.failed.iter().zip(&self.busy))
            .map(|(failed, busy)| *failed || busy.is_some())
            .collect()
    }

    fn any_busy(&self) -> bool {
        self.busy.iter().any(Option::is_some)
    }

    /// Every host left is full: load, not failure. Waits a moment for the next walk, in which
    /// the full hosts may have room again (or queue the compile), unless `wait_until` has come.
    async fn wait_for_room(&mut self, settings: &Settings) -> Room {
        let wait_until = self.wait_until;
        if Instant::now() >= wait_until {
            return Room::TimedOut(self.busy_line(settings.request_timeout));
        }
        let slots = settings.slots.as_ref();
        if settings.local_is_host
            && (slots.and_then(|s| s.try_take_local(settings.local_limit))).is_some()
        {
            return Room::Local;
        }
        let pause = busy_pause().min(wait_until.saturating_duration_since(Instant::now()));
        tokio::time::sleep(pause).await;
        self.all_were_full = true;
        self.busy.fill(None);
        Room::AskAgain
    }

    /// Why the compile gave up on full hosts.
    fn busy_line(&self, waited: Duration) -> String {
        let answers: Vec<&str> = self.busy.iter().flatten().map(String::as_str).collect();
        format!(
            "every host stayed full for compilation_request_timeout of {} s ({})",
            waited.as_secs_f32(),
            answers.join("; ")
        )
    }
}

/// A pause before asking full hosts again: long enough not to flood them, jittered so that
/// waiting processes spread out.
fn busy_pause() -> Duration {
    Duration::from_millis(fastrand::u64(100..300))
}

fn local_instead(settings: &Settings) -> Instead {
    verbose(
        settings,
        "compiling locally: every remote slot is taken and localhost has a free one",
    );
    Instead::Local
}

/// One remote compile on `host`: the result, what crossed the wire and how long it took.
async fn attempt(
    settings: &Settings,
    host: &Host,
    prepared: &Prepared,
    queue: bool,
    mut probe: Option<std::fs::File>,
) -> Result<(CompileResult, Traffic, Duration), Failure> {
    let started = Instant::now();
    let key = host.key();
    let known = KnownChunks::new(settings.cache_dir.as_deref(), &key);
    let mut traffic = Traffic::default();
    let target = Target {
        host,
        auth: settings.auth.as_ref(),
        compression: host.compression.unwrap_or(settings.compression),
        timeouts: Timeouts {
            connect: settings.connect_timeout,
            request: settings.request_timeout,
            heartbeat: settings.heartbeat_timeout,
        },
        queue,
        ssh: &settings.ssh,
    };
    let mut answered = || {
        if let Some(slots) = &settings.slots {
            slots.record_success(&key);
        }
        probe.take();
    };
    let result = compile_on(&target, prepared, &known, &mut traffic, &mut answered).await;
    // A failure is recorded before the probe lock goes, so the process waiting for it skips
    // the host rather than trying it too.
    if let Err(failure) = &result {
        record_failure(settings, host, failure);
    }
    drop(probe);
    Ok((result?, traffic, started.elapsed()))
}

/// Where a job goes next.
enum Taken {
    /// A slot on `hosts[index]`; whether it is the only host left.
    Host(usize, Option<Slot>, bool),
    /// Every remote slot is taken, `localhost` is a host and has a free slot.
    Local,
    /// No host to go to, and why.
    Nothing(Vec<String>),
}

/// A slot on the host not to `skip` with the most free slots; when every slot is taken, waits
/// for one until `wait_until` (or takes a free local slot if `localhost` is one of the hosts).
/// Without a state dir, hosts are taken in order and limits hold only within this process.
async fn take_host(
    settings: &Settings,
    slots: Option<&Slots>,
    skip: &[bool],
    wait_until: Instant,
) -> Taken {
    let Some(slots) = slots else {
        let mut left =
            (settings.hosts.iter().enumerate()).filter(|(i, h)| !skip[*i] && h.is_usable());
        return match left.next() {
            Some((index, _)) => Taken::Host(index, None, left.next().is_none()),
            None => Taken::Nothing(Vec::new()),
        };
    };
    let mut waited = false;
    loop {
        match slots.pick(&settings.hosts, skip) {
            Pick::Host { index, slot, alone } => return Taken::Host(index, Some(slot), alone),
            Pick::NoHost(reasons) => return Taken::Nothing(reasons),
            Pick::Full => {}
        }
        if settings.local_is_host && slots.try_take_local(settings.local_limit).is_some() {
            return Taken::Local;
        }
        if Instant::now() >= wait_until {
            let waited = settings.request_timeout.as_secs_f32();
            return Taken::Nothing(vec![format!(
                "no free slot on any host within compilation_request_timeout of {waited} s"
            )]);
        }
        if !waited {
            debug(settings, "every host slot is taken: waiting for one");
            waited = true;
        }
        tokio::time::sleep(poll_interval()).await;
    }
}
