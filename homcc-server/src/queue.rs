//! The compile slots and the fair queue in front of them. A compile is first admitted (one of
//! `limit + queue` places, or `Busy` at once), uploads what the server lacks while it holds its
//! place, then takes a compile slot. A place held by an upload is provisional: when every place
//! is taken and some are held by uploads, a new compile uploads without one, and once its files
//! are in it takes the place of the compile uploading longest (which goes on uploading without
//! a place, and looks for one in turn when it is done). So compiles that have their files come
//! before uploads that are still under way, and clients trickling uploads cannot keep the
//! others out. When every slot is taken it waits; a freed slot goes to the
//! waiting client address with the fewest compiles running (fair share between users), first
//! come first served among equals, and never stays free while someone waits (work-conserving).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    fmt,
    net::IpAddr,
    sync::{Arc, Mutex},
};

use tokio::sync::Notify;

/// Admission and slots of one server.
#[derive(Debug)]
pub struct Scheduler {
    limit: usize,
    queue: usize,
    inner: Mutex<Inner>,
    /// Woken whenever a slot frees or a waiter leaves: the waiters look again.
    changed: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    /// Compiles holding a place: uploading, waiting or running.
    admitted: usize,
    /// Uploading compiles that hold a place, by arrival (the first uploading longest).
    uploading: BTreeSet<u64>,
    /// Uploading compiles without a place.
    unplaced: HashSet<u64>,
    next_upload: u64,
    running: usize,
    /// The most compiles that ever ran at once.
    peak_running: usize,
    /// Compiles running per client address (addresses with none are removed).
    running_per_client: HashMap<IpAddr, usize>,
    /// Waiting compiles by ticket (arrival order) and their client address.
    waiting: BTreeMap<u64, IpAddr>,
    next_ticket: u64,
}

impl Inner {
    /// The order in which waiters get slots: fewest running for their address, then arrival.
    fn rank(&self, ticket: u64, client: IpAddr) -> (usize, u64) {
        let running = self.running_per_client.get(&client).copied().unwrap_or(0);
        (running, ticket)
    }

    /// How many waiters come before `ticket`.
    fn ahead(&self, ticket: u64, client: IpAddr) -> usize {
        let mine = self.rank(ticket, client);
        (self.waiting.iter())
            .filter(|(t, c)| self.rank(**t, **c) < mine)
            .count()
    }
}

/// Why a compile was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The client would not wait, and every slot is spoken for.
    Slots { limit: usize },
    /// Every slot and every place of the queue is taken.
    Queue { limit: usize, queue: usize },
}

/// The detail of the `Busy` refusal.
impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Full::Slots { limit } => write!(f, "busy: all {limit} compile slots are taken"),
            Full::Queue { limit, queue } => write!(
                f,
                "busy: all {limit} compile slots and the {queue} places of the queue are taken"
            ),
        }
    }
}

impl Scheduler {
    /// `limit` compiles at once, and `queue` more admitted to wait for them.
    pub fn new(limit: usize, queue: usize) -> Arc<Scheduler> {
        Arc::new(Scheduler {
            limit,
            queue,
            inner: Mutex::default(),
            changed: Notify::new(),
        })
    }

    /// A compile of `client` that may upload: with a place among the first `limit` if it may not
    /// wait in the queue (`may_queue` false), else among `limit + queue`; without one if every
    /// such place is taken but some by uploads.
    pub fn admit(self: &Arc<Self>, client: IpAddr, may_queue: bool) -> Result<Uploading, Full> {
        let mut inner = self.inner.lock().unwrap();
        let id = inner.next_upload;
        match self.full(&inner, may_queue) {
            None => {
                inner.admitted += 1;
                inner.uploading.insert(id);
            }
            Some(_) if !inner.uploading.is_empty() => {
                inner.unplaced.insert(id);
            }
            Some(full) => return Err(full),
        }
        inner.next_upload += 1;
        Ok(Uploading {
            scheduler: self.clone(),
            client,
            may_queue,
            id,
        })
    }

    /// Why a compile that may (or may not) queue finds no free place, if it does not.
    fn full(&self, inner: &Inner, may_queue: bool) -> Option<Full> {
        if inner.admitted >= self.limit + self.queue {
            return Some(Full::Queue {
                limit: self.limit,
                queue: self.queue,
            });
        }
        (!may_queue && inner.admitted >= self.limit).then_some(Full::Slots { limit: self.limit })
    }

    /// Compiles running now.
    pub fn running(&self) -> usize {
        self.inner.lock().unwrap().running
    }

    /// The most compiles that ran at once.
    pub fn peak_running(&self) -> usize {
        self.inner.lock().unwrap().peak_running
    }
}

/// A compile uploading its files, with a place or without; dropping it frees its place.
#[derive(Debug)]
pub struct Uploading {
    scheduler: Arc<Scheduler>,
    client: IpAddr,
    may_queue: bool,
    id: u64,
}

impl Uploading {
    /// Its files are in: its place, kept, free, or taken from the compile uploading longest;
    /// `Busy` when every place holds a compile that has its files.
    pub fn uploaded(self) -> Result<Admission, Full> {
        let scheduler = self.scheduler.clone();
        let mut inner = scheduler.inner.lock().unwrap();
        if !inner.uploading.remove(&self.id) {
            match scheduler.full(&inner, self.may_queue) {
                None => inner.admitted += 1,
                Some(full) => {
                    let longest = inner.uploading.pop_first().ok_or(full)?;
                    inner.unplaced.insert(longest);
                }
            }
            inner.unplaced.remove(&self.id);
        }
        Ok(Admission {
            scheduler: self.scheduler.clone(),
            client: self.client,
        })
    }
}

impl Drop for Uploading {
    fn drop(&mut self) {
        let mut inner = self.scheduler.inner.lock().unwrap();
        // After `uploaded`, neither holds it: its place (if any) is the admission's.
        if inner.uploading.remove(&self.id) {
            inner.admitted -= 1;
        }
        inner.unplaced.remove(&self.id);
    }
}

/// An admitted compile's place, its files in; dropping it frees the place.
#[derive(Debug)]
pub struct Admission {
    scheduler: Arc<Scheduler>,
    client: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.scheduler.inner.lock().unwrap().admitted -= 1;
    }
}

impl Admission {
    /// Joins the compiles waiting for a slot (it may be free at once: see [`Waiter::try_take`]).
    pub fn wait(&self) -> Waiter<'_> {
        let mut inner = self.scheduler.inner.lock().unwrap();
        let ticket = inner.next_ticket;
        inner.next_ticket += 1;
        inner.waiting.insert(ticket, self.client);
        Waiter {
            scheduler: &self.scheduler,
            ticket,
            client: self.client,
        }
    }
}

/// A compile waiting for a slot; dropping it leaves the queue.
#[derive(Debug)]
pub struct Waiter<'a> {
    scheduler: &'a Arc<Scheduler>,
    ticket: u64,
    client: IpAddr,
}

impl Waiter<'_> {
    /// The slot, if one is free and this waiter is first in line.
    pub fn try_take(&self) -> Option<Slot> {
        let scheduler = self.scheduler;
        let mut inner = scheduler.inner.lock().unwrap();
        if inner.running >= scheduler.limit || inner.ahead(self.ticket, self.client) > 0 {
            return None;
        }
        inner.waiting.remove(&self.ticket);
        inner.running += 1;
        inner.peak_running = inner.peak_running.max(inner.running);
        *inner.running_per_client.entry(self.client).or_default() += 1;
        let slot_left = inner.running < scheduler.limit && !inner.waiting.is_empty();
        drop(inner);
        if slot_left {
            // Another slot is free for the next in line.
            scheduler.changed.notify_waiters();
        }
        Some(Slot {
            scheduler: scheduler.clone(),
            client: self.client,
        })
    }

    /// Where it stands now: 1 is next.
    pub fn position(&self) -> usize {
        let inner = self.scheduler.inner.lock().unwrap();
        inner.ahead(self.ticket, self.client) + 1
    }

    /// Waits for its turn and a free slot.
    pub async fn take(self) -> Slot {
        loop {
            let changed = self.scheduler.changed.notified();
            tokio::pin!(changed);
            // Registered before looking, so that a slot freed in between is not missed.
            changed.as_mut().enable();
            if let Some(slot) = self.try_take() {
                return slot;
            }
            changed.await;
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let left = (self.scheduler.inner.lock().unwrap())
            .waiting
            .remove(&self.ticket);
        if left.is_some() {
            // It may have stood before others who could take a free slot now.
            self.scheduler.changed.notify_waiters();
        }
    }
}

/// A compile slot; dropping it frees the slot for the next in line.
#[derive(Debug)]
pub struct Slot {
    scheduler: Arc<Scheduler>,
    client: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.scheduler.inner.lock().unwrap();
        inner.running -= 1;
        if let Some(count) = inner.running_per_client.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                inner.running_per_client.remove(&self.client);
            }
        }
        drop(inner);
        self.scheduler.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    /// A compile of 10.0.0.`client` admitted, its files in.
    fn placed(s: &Arc<Scheduler>, client: u8, may_queue: bool) -> Admission {
        s.admit(ip(client), may_queue).unwrap().uploaded().unwrap()
    }

    #[test]
    fn a_compile_with_its_files_takes_the_place_of_the_one_uploading_longest() {
        let s = Scheduler::new(1, 1);
        let (slow, slower) = (s.admit(ip(1), true).unwrap(), s.admit(ip(1), true).unwrap());
        // Every place is held by an upload: a newcomer uploads without one.
        let fast = s.admit(ip(2), true).expect("admitted without a place");
        let fast = fast.uploaded().expect("the place of the first upload");
        assert_eq!(s.inner.lock().unwrap().admitted, 2, "no place is added");
        // `slow` lost its place; when its files are in, it takes `slower`'s.
        let slow = slow.uploaded().expect("the place of the next upload");
        // Now every place holds a compile that has its files.
        let full = Full::Queue { limit: 1, queue: 1 };
        assert_eq!(slower.uploaded().unwrap_err(), full);
        assert_eq!(s.admit(ip(3), true).unwrap_err(), full);
        drop((fast, slow));
        assert_eq!(s.inner.lock().unwrap().admitted, 0, "every place is free");
        let unplaced = {
            let _holder = s.admit(ip(1), true).unwrap();
            let _other = s.admit(ip(1), true).unwrap();
            s.admit(ip(2), true).unwrap()
        };
        drop(unplaced);
        let inner = s.inner.lock().unwrap();
        assert_eq!(
            (inner.admitted, inner.uploading.len(), inner.unplaced.len()),
            (0, 0, 0),
            "uploads dropped with or without a place leave nothing held"
        );
    }

    #[test]
    fn admission_counts_slots_then_queue_places() {
        let s = Scheduler::new(2, 1);
        let a = placed(&s, 1, false);
        let _b = placed(&s, 1, false);
        assert_eq!(s.admit(ip(2), false).unwrap_err(), Full::Slots { limit: 2 });
        let _c = placed(&s, 2, true);
        let full = Full::Queue { limit: 2, queue: 1 };
        assert_eq!(s.admit(ip(3), true).unwrap_err(), full);
        assert_eq!(
            full.to_string(),
            "busy: all 2 compile slots and the 1 places of the queue are taken"
        );
        drop(a);
        assert!(s.admit(ip(3), true).is_ok(), "a freed place is free again");
    }

    #[test]
    fn a_free_slot_is_taken_at_once_and_the_limit_holds() {
        let s = Scheduler::new(2, 4);
        let places: Vec<_> = (0..3).map(|_| placed(&s, 1, true)).collect();
        let one = places[0].wait().try_take().expect("a free slot");
        let _two = places[1].wait().try_take().expect("a second one");
        let third = places[2].wait();
        assert!(third.try_take().is_none(), "the limit is 2");
        assert_eq!(third.position(), 1);
        assert_eq!((s.running(), s.peak_running()), (2, 2));
        drop(one);
        assert!(third.try_take().is_some(), "the freed slot");
    }

    #[test]
    fn a_freed_slot_goes_to_the_address_with_fewest_running_then_first_come() {
        let s = Scheduler::new(2, 8);
        let admit = |client| placed(&s, client, true);
        let (a1, a2, a3, a4, b1, c1) = (admit(1), admit(1), admit(1), admit(1), admit(2), admit(3));
        let first = a1.wait().try_take().unwrap();
        let second = a2.wait().try_take().unwrap();
        // Waiting, in arrival order: a3, a4, b1, c1. Address 1 runs two, 2 and 3 none.
        let (w3, w4, wb, wc) = (a3.wait(), a4.wait(), b1.wait(), c1.wait());
        assert_eq!(
            [wb.position(), wc.position(), w3.position(), w4.position()],
            [1, 2, 3, 4]
        );
        drop(first);
        assert!(
            w3.try_take().is_none() && wc.try_take().is_none(),
            "b1 is first"
        );
        let b_slot = wb.try_take().expect("b1 takes it");
        drop(b_slot);
        assert!(w3.try_take().is_none(), "c1 runs none, address 1 one");
        let _c = wc.try_take().expect("c1 next");
        drop(second);
        // Only address 1 waits now: it gets every slot it can use.
        let _a3 = w3.try_take().expect("a3, the only address waiting");
        assert!(w4.try_take().is_none(), "the limit is 2 (c1 and a3 run)");
    }

    #[test]
    fn a_waiter_that_leaves_lets_the_next_one_in() {
        let s = Scheduler::new(1, 2);
        let (a, b, c) = (
            placed(&s, 1, true),
            placed(&s, 2, true),
            placed(&s, 3, true),
        );
        let running = a.wait().try_take().unwrap();
        let wb = b.wait();
        let wc = c.wait();
        assert_eq!(wc.position(), 2);
        drop(running);
        drop(wb);
        assert_eq!(wc.position(), 1);
        assert!(wc.try_take().is_some());
    }

    #[tokio::test]
    async fn a_waiting_compile_starts_when_a_slot_frees() {
        let s = Scheduler::new(1, 1);
        let a = placed(&s, 1, true);
        let b = placed(&s, 2, true);
        let running = a.wait().take().await;
        let waiting = tokio::spawn(async move {
            let slot = b.wait().take().await;
            drop(slot);
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(running);
        waiting.await.unwrap();
        assert_eq!(s.running(), 0);
    }
}
