//! An in-memory event log shared by several broadcasters in one process: the fake that makes
//! the cases a live Redis is otherwise needed for (resume from the store, an id not read yet,
//! a trimmed range, an epoch change, a re-sent batch) fast and deterministic.
//!
//! Entries are delivered synchronously: `append` stores the entry and every online follower
//! reads it before `publish` returns. Positions are `(0, n)`, ids `<epoch>-0-<n>`.
//!
//! Public as [`crate::testing::MemoryStore`], a test aid for code that runs several
//! instances; its unit tests below are the engine-independent cases of the event log.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use super::EngineStats;
use super::{
    Append, Body, Engine, EngineOptions, Entry, ReplayFrom, ReplayFuture, ReplayPage, ResetReason,
    Senders, Sink, StopFuture, DEDUPE_WINDOW,
};
use crate::wire::{new_epoch, EventId};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Test code: every critical section leaves its data consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An in-memory event store shared by the broadcasters built with
/// [`BroadcasterBuilder::memory_log`](crate::BroadcasterBuilder::memory_log): a fake of a
/// Redis or NATS engine for tests, with the faults a test can inject (an instance cut off,
/// trimming, a restart empty, a batch sent twice). Delivery is synchronous: when `publish`
/// returns, every instance online has the event.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use sse_core::{testing::MemoryStore, Broadcaster};
///
/// let store = MemoryStore::new(100);
/// let a = Broadcaster::builder().memory_log(&store).build();
/// let b = Broadcaster::builder().memory_log(&store).build();
/// a.publish("hello", &1).unwrap();
/// assert_eq!(b.last_event_id(), store.id(1));
/// store.set_online(1, false); // b is cut off: it reads nothing, its events wait
/// # }
/// ```
pub struct MemoryStore {
    inner: Mutex<Store>,
    /// Every instance opened on it, in order.
    logs: Mutex<Vec<Weak<MemoryLog>>>,
}

struct Store {
    epoch: u64,
    /// The last position given out.
    last: u64,
    entries: VecDeque<Stored>,
    maxlen: usize,
}

#[derive(Clone)]
struct Stored {
    pos: u64,
    /// Sending instance and its ticket, for duplicate detection.
    sender: (u64, u64),
    /// `Err(reason)`: a reset marker.
    event: Result<Append, String>,
}

impl MemoryStore {
    /// A store keeping at most `maxlen` entries.
    pub fn new(maxlen: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Store {
                epoch: new_epoch(),
                last: 0,
                entries: VecDeque::new(),
                maxlen,
            }),
            logs: Mutex::default(),
        })
    }

    /// What `BroadcasterBuilder::engine` takes: one instance per broadcaster; instances are
    /// numbered in the order they are built (see [`MemoryStore::set_online`]).
    pub(crate) fn engine(
        self: &Arc<Self>,
    ) -> impl Fn(EngineOptions) -> Arc<dyn Engine> + Send + Sync + 'static {
        let store = self.clone();
        move |options| {
            let log = Arc::new(MemoryLog {
                store: store.clone(),
                instance: new_epoch(),
                outbox_cap: options.outbox.max(1),
                tickets: AtomicU64::new(0),
                sink: Mutex::new(None),
                reader: Mutex::new(Reader::default()),
                online: AtomicBool::new(true),
                outbox: Mutex::default(),
                dropped: AtomicU64::new(0),
            });
            lock(&store.logs).push(Arc::downgrade(&log));
            log
        }
    }

    fn logs(&self) -> Vec<Arc<MemoryLog>> {
        lock(&self.logs).iter().filter_map(Weak::upgrade).collect()
    }

    fn push(&self, sender: (u64, u64), event: Result<Append, String>) {
        let mut store = lock(&self.inner);
        store.last += 1;
        let pos = store.last;
        store.entries.push_back(Stored { pos, sender, event });
        while store.entries.len() > store.maxlen {
            store.entries.pop_front();
        }
    }

    fn pump_all(&self) {
        for log in self.logs() {
            log.pump();
        }
    }

    /// Cuts instance `index` (the order broadcasters were built on this store, from 0) off
    /// the store (its appends wait in its outbox, it reads nothing), or brings it back (it
    /// sends its outbox, then reads what it missed).
    pub fn set_online(&self, index: usize, online: bool) {
        let Some(log) = lock(&self.logs).get(index).and_then(Weak::upgrade) else {
            return;
        };
        log.online.store(online, Ordering::SeqCst);
        if online {
            log.flush();
            self.pump_all();
        }
    }

    /// Keeps only the newest `keep` entries.
    pub fn trim(&self, keep: usize) {
        let mut store = lock(&self.inner);
        while store.entries.len() > keep {
            store.entries.pop_front();
        }
    }

    /// The store restarted empty: a new epoch, no entries.
    pub fn restart_empty(&self) {
        {
            let mut store = lock(&self.inner);
            store.epoch = new_epoch();
            store.last = 0;
            store.entries.clear();
        }
        self.pump_all();
    }

    /// Appends the newest `n` entries again, as a sender does when the reply to a batch was
    /// lost.
    pub fn resend(&self, n: usize) {
        let again: Vec<Stored> = {
            let store = lock(&self.inner);
            let skip = store.entries.len().saturating_sub(n);
            store.entries.iter().skip(skip).cloned().collect()
        };
        for entry in again {
            self.push(entry.sender, entry.event);
        }
        self.pump_all();
    }

    /// The id of the entry at `pos` (from 1) in the current epoch.
    pub fn id(&self, pos: u64) -> EventId {
        EventId::entry(lock(&self.inner).epoch, 0, pos)
    }
}

#[derive(Default)]
struct Reader {
    /// `None` before the first read.
    epoch: Option<u64>,
    last: u64,
    senders: Senders,
}

/// One instance's link to the store.
pub(crate) struct MemoryLog {
    store: Arc<MemoryStore>,
    instance: u64,
    outbox_cap: usize,
    tickets: AtomicU64,
    sink: Mutex<Option<Weak<dyn Sink>>>,
    reader: Mutex<Reader>,
    online: AtomicBool,
    outbox: Mutex<VecDeque<(u64, Append)>>,
    dropped: AtomicU64,
}

impl MemoryLog {
    /// A stored entry as an engine hands it over: decoded, not encoded.
    fn entry(&self, epoch: u64, stored: &Stored) -> Entry {
        let body = match &stored.event {
            Ok(event) => Body::Event(event.clone()),
            Err(reason) => Body::Reset(ResetReason::from_marker(reason)),
        };
        Entry {
            id: EventId::entry(epoch, 0, stored.pos),
            body,
        }
    }

    /// Reads what the store has after this instance's position into its sink.
    fn pump(&self) {
        if !self.online.load(Ordering::SeqCst) {
            return;
        }
        let Some(sink) = lock(&self.sink).as_ref().and_then(Weak::upgrade) else {
            return;
        };
        let mut reader = lock(&self.reader);
        let (epoch, entries) = {
            let store = lock(&self.store.inner);
            let last = if reader.epoch == Some(store.epoch) {
                reader.last
            } else {
                // First read: from the newest entry; a new epoch: from the beginning.
                let from = if reader.epoch.is_none() {
                    store.last
                } else {
                    0
                };
                reader.epoch = Some(store.epoch);
                reader.senders = Senders::default();
                reader.last = from;
                sink.start_epoch(EventId::entry(store.epoch, 0, from));
                from
            };
            // Entries after `last` that are gone were trimmed before this instance read them.
            if store.entries.front().is_some_and(|e| e.pos > last + 1) {
                sink.gap(ResetReason::Trimmed);
            }
            let entries: Vec<Stored> = store
                .entries
                .iter()
                .filter(|e| e.pos > last)
                .cloned()
                .collect();
            (store.epoch, entries)
        };
        for entry in entries {
            reader.last = entry.pos;
            if !reader.senders.is_repeat(entry.sender.0, entry.sender.1) {
                sink.deliver(self.entry(epoch, &entry));
            }
        }
    }

    /// Sends the outbox to the store, with a reset marker first if events were dropped.
    fn flush(&self) {
        let queued: Vec<_> = lock(&self.outbox).drain(..).collect();
        let dropped = self.dropped.swap(0, Ordering::SeqCst);
        if dropped > 0 {
            let reason =
                format!("{dropped} events were lost while the event store was unreachable");
            self.store.push((self.instance, 0), Err(reason));
        }
        for (ticket, event) in queued {
            self.store.push((self.instance, ticket), Ok(event));
        }
    }
}

impl Engine for MemoryLog {
    fn follow(self: Arc<Self>, sink: Weak<dyn Sink>) {
        *lock(&self.sink) = Some(sink);
        self.pump();
    }

    fn append(&self, event: Append) {
        let ticket = self.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        if !self.online.load(Ordering::SeqCst) {
            let mut outbox = lock(&self.outbox);
            if outbox.len() >= self.outbox_cap {
                outbox.pop_front();
                self.dropped.fetch_add(1, Ordering::SeqCst);
            }
            outbox.push_back((ticket, event));
            return;
        }
        self.store.push((self.instance, ticket), Ok(event));
        self.store.pump_all();
    }

    fn replay(
        &self,
        from: ReplayFrom,
        upto: EventId,
        max: usize,
        seen: Option<Senders>,
    ) -> ReplayFuture {
        let result = (|| {
            let store = lock(&self.store.inner);
            let epoch = match from {
                ReplayFrom::After(after) => after.epoch(),
                ReplayFrom::Oldest => upto.epoch(),
            };
            if epoch != store.epoch {
                return Err(ResetReason::Stale);
            }
            let upto = upto.position().1;
            let after = match from {
                // Every page, as the server engines do: a page after a trimmed entry would
                // skip what was trimmed since the previous page. Positions are consecutive
                // from 1, so the one after `after` must still be there (or not given out
                // yet), also after the empty stream's 0.
                ReplayFrom::After(after) => {
                    let after = after.position().1;
                    let first = store.entries.front().map_or(store.last + 1, |e| e.pos);
                    if after + 1 < first {
                        return Err(ResetReason::TooOld);
                    }
                    after
                }
                ReplayFrom::Oldest => store.entries.front().map_or(0, |e| e.pos.saturating_sub(1)),
            };
            let mut senders = seen.unwrap_or_else(|| {
                // Entries just before `after` tell repeats of them apart (a re-sent batch).
                let mut senders = Senders::default();
                let before: Vec<&Stored> =
                    store.entries.iter().filter(|e| e.pos <= after).collect();
                let skip = before.len().saturating_sub(DEDUPE_WINDOW);
                for e in &before[skip..] {
                    senders.is_repeat(e.sender.0, e.sender.1);
                }
                senders
            });
            let page: Vec<&Stored> = store
                .entries
                .iter()
                .filter(|e| e.pos > after && e.pos <= upto)
                .take(max)
                .collect();
            let reached = page.last().map(|e| EventId::entry(store.epoch, 0, e.pos));
            let entries = page
                .into_iter()
                .filter(|e| !senders.is_repeat(e.sender.0, e.sender.1))
                .map(|e| self.entry(store.epoch, e))
                .collect();
            Ok(ReplayPage {
                entries,
                reached,
                seen: senders,
            })
        })();
        Box::pin(std::future::ready(result))
    }

    fn may_be_ahead(&self, id: EventId, _last_read: EventId) -> bool {
        id.position().1 <= lock(&self.store.inner).last
    }

    fn stop(&self, _flush: Duration) {}

    fn stopped(&self) -> StopFuture {
        Box::pin(std::future::ready(()))
    }

    fn stats(&self) -> EngineStats {
        EngineStats {
            outbox: lock(&self.outbox).len(),
            outbox_dropped: self.dropped.load(Ordering::SeqCst),
            ..EngineStats::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::StreamExt;

    use super::*;
    use crate::{Broadcaster, EventStream, RESET_EVENT};

    pub(super) fn instance(store: &Arc<MemoryStore>, history: usize) -> Broadcaster {
        Broadcaster::builder()
            .history(history)
            .keep_alive(None)
            .memory_log(store)
            .build()
    }

    /// The events (id, name) a stream has ready now.
    pub(super) async fn events(stream: &mut EventStream) -> Vec<(String, String)> {
        let mut text = String::new();
        while let Ok(Some(Ok(chunk))) =
            tokio::time::timeout(Duration::from_millis(20), stream.next()).await
        {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text.split("\n\n")
            .filter_map(|frame| {
                let id = frame.lines().find_map(|l| l.strip_prefix("id: "))?;
                let name = frame.lines().find_map(|l| l.strip_prefix("event: "))?;
                Some((id.to_owned(), name.to_owned()))
            })
            .collect()
    }

    fn names(events: &[(String, String)]) -> Vec<&str> {
        events.iter().map(|(_, n)| n.as_str()).collect()
    }

    #[tokio::test]
    async fn an_id_older_than_the_local_history_resumes_from_the_store() {
        let store = MemoryStore::new(100);
        let a = instance(&store, 10);
        for name in ["e1", "e2", "e3", "e4", "e5"] {
            a.publish(name, &0).unwrap();
        }
        // Started after those events: its local history is empty.
        let b = instance(&store, 10);
        let mut stream = b.subscribe(Some(store.id(1))).unwrap();
        assert_eq!(names(&events(&mut stream).await), ["e2", "e3", "e4", "e5"]);
        assert_eq!(b.stats().resumed, 1);
    }

    #[tokio::test]
    async fn a_long_replay_comes_a_page_at_a_time_in_order_and_once() {
        let store = MemoryStore::new(5000);
        let a = instance(&store, 2000);
        for i in 0..1000 {
            a.publish("e", &i).unwrap();
        }
        // A batch sent again, as after a lost reply, in the middle of the range.
        store.resend(300);
        let b = instance(&store, 2000);
        let mut stream = b.subscribe(Some(store.id(1))).unwrap();
        let mut text = String::new();
        while let Ok(Some(Ok(chunk))) =
            tokio::time::timeout(Duration::from_millis(50), stream.next()).await
        {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        let data: Vec<u32> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: ")?.parse().ok())
            .collect();
        assert_eq!(data, (1..1000).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_client_resumes_on_another_instance_with_the_same_ids() {
        let store = MemoryStore::new(100);
        let (a, b) = (instance(&store, 100), instance(&store, 100));
        let mut on_b = b.subscribe(None).unwrap();
        let first = a.publish("e1", &1).map(|_| store.id(1)).unwrap();
        a.publish("e2", &2).unwrap();
        let seen = events(&mut on_b).await;
        assert_eq!(seen[0].0, first.to_string());
        assert_eq!(names(&seen), ["e1", "e2"]);
        let mut resumed = b.subscribe(Some(first)).unwrap();
        assert_eq!(names(&events(&mut resumed).await), ["e2"]);
    }

    #[tokio::test]
    async fn an_id_not_read_here_yet_skips_live_events_up_to_it() {
        let store = MemoryStore::new(100);
        let (a, b) = (instance(&store, 100), instance(&store, 100));
        store.set_online(1, false);
        for name in ["e1", "e2", "e3"] {
            a.publish(name, &0).unwrap();
        }
        // The client saw e2 on instance a; instance b has not read it yet.
        let mut stream = b.subscribe(Some(store.id(2))).unwrap();
        store.set_online(1, true);
        a.publish("e4", &0).unwrap();
        assert_eq!(names(&events(&mut stream).await), ["e3", "e4"]);
        assert_eq!(b.stats().resets, 0);
    }

    #[tokio::test]
    async fn an_id_in_a_trimmed_range_gets_a_reset() {
        let store = MemoryStore::new(100);
        let a = instance(&store, 2);
        for i in 0..10 {
            a.publish("e", &i).unwrap();
        }
        store.trim(3);
        let mut stream = a.subscribe(Some(store.id(2))).unwrap();
        assert_eq!(names(&events(&mut stream).await), [RESET_EVENT]);
        assert_eq!(a.stats().resets, 1);
    }

    #[tokio::test]
    async fn an_id_from_before_the_store_restarted_empty_gets_a_reset() {
        let store = MemoryStore::new(100);
        let a = instance(&store, 100);
        a.publish("old", &0).unwrap();
        let old = store.id(1);
        store.restart_empty();
        a.publish("new", &0).unwrap();
        assert_ne!(a.last_event_id().epoch(), old.epoch());
        let mut stream = a.subscribe(Some(old)).unwrap();
        assert_eq!(names(&events(&mut stream).await), [RESET_EVENT]);
        let mut fresh = a.subscribe(None).unwrap();
        a.publish("newer", &0).unwrap();
        assert_eq!(names(&events(&mut fresh).await), ["newer"]);
    }

    #[tokio::test]
    async fn a_resent_batch_is_delivered_once_live_and_on_replay() {
        let store = MemoryStore::new(100);
        let a = instance(&store, 10);
        let mut live = a.subscribe(None).unwrap();
        for name in ["e1", "e2", "e3"] {
            a.publish(name, &0).unwrap();
        }
        store.resend(2);
        a.publish("e4", &0).unwrap();
        assert_eq!(names(&events(&mut live).await), ["e1", "e2", "e3", "e4"]);
        let b = instance(&store, 10);
        let mut replayed = b.subscribe(Some(store.id(1))).unwrap();
        assert_eq!(names(&events(&mut replayed).await), ["e2", "e3", "e4"]);
    }

    #[tokio::test]
    async fn an_outage_longer_than_the_outbox_drops_the_oldest_and_resets() {
        let store = MemoryStore::new(100);
        let a = Broadcaster::builder()
            .keep_alive(None)
            .outbox(2)
            .memory_log(&store)
            .build();
        let mut live = a.subscribe(None).unwrap();
        store.set_online(0, false);
        for name in ["e1", "e2", "e3"] {
            a.publish(name, &0).unwrap();
        }
        assert_eq!(a.stats().engine.outbox_dropped, 1);
        store.set_online(0, true);
        assert_eq!(names(&events(&mut live).await), [RESET_EVENT, "e2", "e3"]);
    }
}

/// Hardening (faults from outside): each test fails on the design before it was fixed.
#[cfg(test)]
mod faults {
    use super::tests::{events, instance};
    use super::*;
    use crate::{EventStream, RESET_EVENT};

    async fn names(stream: &mut EventStream) -> Vec<String> {
        events(stream)
            .await
            .into_iter()
            .map(|(_, name)| name)
            .collect()
    }

    #[tokio::test]
    async fn a_reader_cut_off_while_the_store_trimmed_past_it_gets_a_reset_not_a_gap() {
        let store = MemoryStore::new(10);
        let (a, b) = (instance(&store, 100), instance(&store, 100));
        let mut on_a = a.subscribe(None).unwrap();
        a.publish("before", &0).unwrap();
        store.set_online(0, false);
        for i in 0..50 {
            b.publish("during", &i).unwrap();
        }
        store.set_online(0, true);
        let got = names(&mut on_a).await;
        assert_eq!(got.first().map(String::as_str), Some("before"));
        assert!(got.iter().any(|n| n == RESET_EVENT), "silent gap: {got:?}");
        assert_eq!(a.stats().resets, 1);
    }

    #[tokio::test]
    async fn connected_subscribers_get_a_reset_when_the_store_restarts_empty() {
        let store = MemoryStore::new(100);
        let a = instance(&store, 100);
        a.publish("old", &0).unwrap();
        let mut live = a.subscribe(None).unwrap();
        store.restart_empty();
        a.publish("new", &0).unwrap();
        assert_eq!(names(&mut live).await, [RESET_EVENT, "new"]);
    }

    #[tokio::test]
    async fn a_client_that_resumed_ahead_and_then_lags_gets_nothing_twice() {
        // A history larger than the live channel (1024), so a burst makes the stream lag and
        // catch up from the history.
        let store = MemoryStore::new(5000);
        let (a, b) = (instance(&store, 4000), instance(&store, 4000));
        store.set_online(1, false);
        for i in 0..2000 {
            a.publish("e", &i).unwrap();
        }
        // The client saw the first 1500 on instance a; b has read none of them yet.
        let mut stream = b.subscribe(Some(store.id(1500))).unwrap();
        store.set_online(1, true);
        let got = names(&mut stream).await;
        assert_eq!(got.len(), 500, "events the client already had came again");
    }
}
