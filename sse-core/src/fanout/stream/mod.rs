//! One subscriber's stream, built from small parts: a [source](source) of frames (preamble,
//! replay or catch-up, then live frames its filter wants, joined by the [batcher](batch)),
//! wrapped in [keep-alive](keep_alive) comments, and ended at once by shutdown or when the
//! subscriber's credentials expire.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use tokio::time::{Instant, Sleep};

use super::admission::Admission;
use super::hub::Hub;
use crate::observe::Ending;
use crate::topic::Filter;
use crate::wire::gzip::Coding;
use crate::wire::LastEventId;

mod batch;
mod keep_alive;
mod queue;
mod source;

use keep_alive::KeepAlive;
use source::Source;

/// The body of one SSE response: a stream of encoded frames.
///
/// Made by [`Broadcaster::subscribe`](crate::Broadcaster::subscribe); the ready-made endpoint
/// of [`Broadcaster::service`](crate::Broadcaster::service) serves it.
pub struct EventStream {
    shared: Arc<Hub>,
    inner: crate::observe::Observed<KeepAlive<Source>>,
    /// When the subscriber's credentials expire.
    expiry: Option<Pin<Box<Sleep>>>,
    done: bool,
    _admission: Option<Admission>,
}

impl EventStream {
    /// A stream resuming after `last_event_id`, sent in `coding`; `None` once shut down.
    pub(crate) fn open(
        shared: Arc<Hub>,
        last_event_id: LastEventId,
        filter: Filter,
        coding: Coding,
        admission: Option<Admission>,
        expires_at: Option<Instant>,
    ) -> Option<Self> {
        let observing = crate::observe::Opening::new(&filter, last_event_id);
        let start = shared.subscribe(last_event_id, filter)?;
        Some(Self {
            inner: crate::observe::Observed::new(
                observing,
                KeepAlive::new(Source::new(shared.clone(), start, coding)),
                || shared.lock().last_id,
            ),
            expiry: expires_at.map(|at| Box::pin(tokio::time::sleep_until(at))),
            done: false,
            _admission: admission,
            shared,
        })
    }

    /// Bytes waiting to be written, for the tests of what a stalled client costs.
    #[cfg(test)]
    fn queued_bytes(&self) -> usize {
        self.inner.inner().queued()
    }

    /// Ends the stream `how`: a gzip stream writes its trailer first, so that the client
    /// sees a complete body.
    fn end(&mut self, how: Ending) -> Poll<Option<Result<Bytes, Infallible>>> {
        self.done = true;
        self.inner.ending(how);
        match self.inner.inner_mut().inner_mut().finish() {
            Some(trailer) => Poll::Ready(Some(Ok(trailer))),
            None => Poll::Ready(None),
        }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        // A stream dropped unpolled after shutdown, or past its expiry, still ended that way.
        if self.shared.is_closed() {
            self.inner.ending(Ending::Shutdown);
        } else if (self.expiry.as_ref()).is_some_and(|at| at.deadline() <= Instant::now()) {
            self.inner.ending(Ending::Expired);
        }
    }
}

impl Stream for EventStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done || this.shared.is_closed() {
            return this.end(Ending::Shutdown);
        }
        if let Some(expiry) = &mut this.expiry {
            if expiry.as_mut().poll(cx).is_ready() {
                this.shared.counters.expired();
                tracing::debug!("sse subscriber's credentials expired; stream ended");
                return this.end(Ending::Expired);
            }
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(chunk)) => Poll::Ready(Some(Ok(chunk))),
            Poll::Ready(None) => this.end(Ending::Shutdown),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::StreamExt;

    use crate::{Broadcaster, EventId};

    /// Collects the events (not comments or the preamble) in `chunks`, as (id, name) pairs.
    fn events(chunks: &[bytes::Bytes]) -> Vec<(EventId, String)> {
        let text: String = chunks.iter().map(|c| String::from_utf8_lossy(c)).collect();
        text.split("\n\n")
            .filter_map(|frame| {
                let mut id = None;
                let mut name = None;
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.parse().ok();
                    }
                    if let Some(v) = line.strip_prefix("event: ") {
                        name = Some(v.to_owned());
                    }
                }
                Some((id?, name?))
            })
            .collect()
    }

    async fn drain(stream: &mut super::EventStream) -> Vec<bytes::Bytes> {
        let mut out = Vec::new();
        while let Ok(Some(Ok(chunk))) =
            tokio::time::timeout(Duration::from_millis(50), stream.next()).await
        {
            out.push(chunk);
        }
        out
    }

    /// Every open connection carries one (boxed by actix as the response body), so a field
    /// added here costs each of them its size; rare state is boxed apart (it was about 550
    /// bytes before that was done, 272 after).
    #[test]
    fn an_open_stream_stays_small() {
        let size = std::mem::size_of::<super::EventStream>();
        assert!(size <= 288, "an EventStream is {size} bytes");
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_caught_up_from_history() {
        let b = Broadcaster::builder()
            .history(5000)
            .keep_alive(None)
            .build();
        let mut stream = b.subscribe(None).unwrap();
        // Far more than the channel holds, without the subscriber reading.
        for i in 0..3000 {
            b.publish("e", &i).unwrap();
        }
        let got = events(&drain(&mut stream).await);
        let seqs: Vec<u64> = got.iter().map(|(id, _)| id.seq()).collect();
        assert_eq!(seqs, (1..=3000).collect::<Vec<_>>());
        assert_eq!(b.stats().caught_up, 1);
        assert_eq!(b.stats().resets, 0);
        // And live afterwards.
        b.publish("e", &"live").unwrap();
        let got = events(&drain(&mut stream).await);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.seq(), 3001);
    }

    #[tokio::test]
    async fn catch_up_after_lag_keeps_private_events_private() {
        let b = Broadcaster::builder()
            .history(5000)
            .keep_alive(None)
            .build();
        let filter = crate::topic::Filter {
            selectors: Some(Box::new(["t/*".parse().unwrap()])),
            grants: Box::new(["t/mine".parse().unwrap()]),
            client_id: None,
        };
        let mut stream = super::EventStream::open(
            b.shared.clone(),
            crate::wire::LastEventId::None,
            filter,
            crate::wire::gzip::Coding::Identity,
            None,
            None,
        )
        .unwrap();
        use crate::Event;
        for i in 0..3000 {
            match i % 3 {
                0 => b.publish_event(Event::new("secret").json(&i).topic("t/other").private()),
                1 => b.publish_event(Event::new("mine").json(&i).topic("t/mine").private()),
                _ => b.publish_event(Event::new("public").json(&i).topic("t/public")),
            }
            .unwrap();
        }
        let got = events(&drain(&mut stream).await);
        assert_eq!(b.stats().caught_up, 1, "the subscriber lagged");
        assert_eq!(got.len(), 2000);
        assert!(got.iter().all(|(_, name)| name != "secret"), "{got:?}");
    }

    #[tokio::test]
    async fn a_subscriber_behind_the_history_gets_a_reset_then_live_events() {
        let b = Broadcaster::builder().history(16).keep_alive(None).build();
        let mut stream = b.subscribe(None).unwrap();
        for i in 0..100 {
            b.publish("e", &i).unwrap();
        }
        let got = events(&drain(&mut stream).await);
        assert_eq!(got[0].1, crate::RESET_EVENT, "{got:?}");
        assert_eq!(
            got[0].0.seq(),
            100,
            "the reset carries the id to resume from"
        );
        assert_eq!(got.len(), 1, "nothing stale after the reset: {got:?}");
        assert_eq!(b.stats().resets, 1);
        b.publish("e", &"live").unwrap();
        let got = events(&drain(&mut stream).await);
        assert_eq!(
            got.iter().map(|(id, _)| id.seq()).collect::<Vec<_>>(),
            [101]
        );
    }

    #[tokio::test]
    async fn shutdown_ends_the_stream_at_once() {
        let b = Broadcaster::new();
        let mut stream = b.subscribe(None).unwrap();
        assert!(stream.next().await.is_some(), "preamble");
        for i in 0..10 {
            b.publish("e", &i).unwrap();
        }
        b.shutdown();
        let end = tokio::time::timeout(Duration::from_secs(1), stream.next()).await;
        assert!(
            matches!(end, Ok(None)),
            "queued events are not flushed after shutdown"
        );
        drop(stream);
        assert_eq!(b.stats().subscribers, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn keep_alive_only_when_idle() {
        let b = Broadcaster::builder()
            .keep_alive(Duration::from_secs(5))
            .build();
        let mut stream = b.subscribe(None).unwrap();
        stream.next().await.unwrap().unwrap();
        tokio::time::advance(Duration::from_secs(3)).await;
        b.publish("e", &1).unwrap();
        let chunk = stream.next().await.unwrap().unwrap();
        assert!(chunk.starts_with(b"id: "));
        // 3 s after the event, not 5 s after connecting: still quiet.
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(futures_util::FutureExt::now_or_never(stream.next()).is_none());
        tokio::time::advance(Duration::from_secs(2)).await;
        let chunk = stream.next().await.unwrap().unwrap();
        assert_eq!(&chunk[..], crate::wire::encode::KEEP_ALIVE);
    }

    /// Everything a stream writes until it ends, polled as a client would read it: each
    /// chunk as soon as it is ready, keep-alives when idle (time is paused).
    async fn read_now(stream: &mut super::EventStream, into: &mut Vec<u8>) -> bool {
        while let Ok(next) = tokio::time::timeout(Duration::from_millis(50), stream.next()).await {
            match next {
                Some(Ok(chunk)) => into.extend_from_slice(&chunk),
                None => return true,
            }
        }
        false
    }

    /// A gzip stream and an identity stream of one broadcaster see the same events, a reset
    /// for everyone and a keep-alive: the gzip one (the events deflated once, its own header
    /// and trailer) decodes to exactly the bytes of the other.
    #[tokio::test(start_paused = true)]
    async fn a_gzip_stream_decodes_to_exactly_the_identity_stream() {
        use crate::wire::gzip::Coding;
        use std::io::Read;

        let b = Broadcaster::builder()
            .compress(true)
            .keep_alive(Duration::from_secs(5))
            .build();
        let open = |coding| {
            let none = crate::wire::LastEventId::None;
            super::EventStream::open(
                b.shared.clone(),
                none,
                Default::default(),
                coding,
                None,
                None,
            )
            .unwrap()
        };
        let (mut plain, mut gzip) = (open(Coding::Identity), open(Coding::Gzip));
        let (mut plain_bytes, mut gzip_bytes) = (Vec::new(), Vec::new());
        let big = serde_json::json!({ "rows": vec!["some row of JSON"; 256] });
        for round in 0..3 {
            b.publish("small", &round).unwrap();
            b.publish("big", &big).unwrap();
            if round == 1 {
                crate::engine::Sink::gap(&*b.shared, crate::ResetReason::Lost { events: 3 });
            }
            read_now(&mut plain, &mut plain_bytes).await;
            read_now(&mut gzip, &mut gzip_bytes).await;
        }
        tokio::time::advance(Duration::from_secs(6)).await;
        for (stream, bytes) in [(&mut plain, &mut plain_bytes), (&mut gzip, &mut gzip_bytes)] {
            read_now(stream, bytes).await;
        }
        let text = String::from_utf8_lossy(&plain_bytes).into_owned();
        assert!(text.contains(crate::RESET_EVENT), "{text}");
        assert!(text.ends_with(": keep-alive\n\n"), "{text}");
        b.shutdown();
        assert!(read_now(&mut plain, &mut plain_bytes).await, "ended");
        assert!(read_now(&mut gzip, &mut gzip_bytes).await, "ended");

        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&gzip_bytes[..])
            .read_to_end(&mut decoded)
            .expect("a complete gzip body, its CRC and length right");
        assert_eq!(String::from_utf8_lossy(&decoded), text);
        assert!(
            gzip_bytes.len() * 3 < plain_bytes.len(),
            "{} bytes gzip, {} identity",
            gzip_bytes.len(),
            plain_bytes.len()
        );
    }

    #[tokio::test]
    async fn ready_frames_are_sent_as_one_chunk() {
        let b = Broadcaster::builder().keep_alive(None).build();
        let mut stream = b.subscribe(None).unwrap();
        stream.next().await.unwrap().unwrap();
        for i in 0..10 {
            b.publish("e", &i).unwrap();
        }
        let chunk = stream.next().await.unwrap().unwrap();
        assert_eq!(events(&[chunk]).len(), 10);
    }
}

/// Hostile clients: what a subscriber that never reads may cost.
#[cfg(test)]
mod hostile {
    use crate::Broadcaster;

    /// A resume whose client wants none of a long history: each poll reads one bounded part
    /// of it (under the publish lock), instead of all of it in one poll.
    #[test]
    fn a_resume_that_wants_nothing_reads_the_history_a_part_per_poll() {
        use futures_util::{FutureExt, StreamExt};

        let b = Broadcaster::builder().keep_alive(None).build();
        let first = b
            .publish_event(crate::Event::new("e").json(&0).topic("other"))
            .unwrap();
        for i in 0..3 * 4096 {
            b.publish_event(crate::Event::new("e").json(&i).topic("other"))
                .unwrap();
        }
        let last = format!("id: {}\n", b.last_event_id());
        let filter = crate::topic::Filter {
            selectors: Some(Box::new(["mine".parse().unwrap()])),
            grants: Box::new([]),
            client_id: None,
        };
        let after = crate::wire::LastEventId::After(first);
        let mut stream = super::EventStream::open(
            b.shared.clone(),
            after,
            filter,
            crate::wire::gzip::Coding::Identity,
            None,
            None,
        )
        .unwrap();
        let mut text = String::new();
        let mut polls = 0;
        while !text.contains(&last) && polls < 100 {
            polls += 1;
            if let Some(Some(Ok(chunk))) = stream.next().now_or_never() {
                text.push_str(&String::from_utf8_lossy(&chunk));
            }
        }
        assert!(
            text.contains(&last),
            "moved past what it did not want: {text:?}"
        );
        assert!(polls >= 3, "the whole history was read in {polls} poll(s)");
    }

    #[test]
    fn a_resume_far_back_holds_a_position_not_a_copy_of_the_history() {
        let b = Broadcaster::builder().keep_alive(None).build();
        let first = b.publish("e", &"x".repeat(200)).unwrap();
        for _ in 0..20_000 {
            b.publish("e", &"x".repeat(200)).unwrap();
        }
        let stream = b.subscribe(Some(first)).unwrap();
        // At most one batch is ever queued per subscriber, whatever it missed.
        assert!(
            stream.queued_bytes() <= super::batch::MAX_BATCH,
            "{} bytes queued",
            stream.queued_bytes()
        );
    }
}
