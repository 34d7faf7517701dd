//! `Last-Event-ID` replay from the stream, for ids older than the local history.

use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::streams::StreamRangeReply;

use super::{frame, sender, Counters, RESPONSE_TIMEOUT};
use crate::log::{reason, Frame, ReplayError, Senders};
use crate::wire::{EventId, WireFormat};

/// The entries after `range.0` up to `range.1`, at most `max`, encoded.
pub(super) async fn run(
    conn: Option<MultiplexedConnection>,
    key: String,
    format: WireFormat,
    (after, upto): (EventId, EventId),
    max: usize,
    counters: Arc<Counters>,
) -> Result<Vec<Frame>, ReplayError> {
    let (Some((ams, an)), Some((ums, un))) = (after.entry_parts(), upto.entry_parts()) else {
        return Err(reason::STALE);
    };
    let Some(mut conn) = conn else {
        return Err(reason::UNREACHABLE);
    };
    let from = format!("{ams}-{an}");
    let mut pipe = redis::pipe();
    pipe.cmd("XRANGE")
        .arg(&key)
        .arg(&from)
        .arg(&from)
        .cmd("XRANGE")
        .arg(&key)
        .arg(format!("({from}"))
        .arg(format!("{ums}-{un}"))
        .arg("COUNT")
        .arg(max.saturating_add(1));
    let query = pipe.query_async::<(StreamRangeReply, StreamRangeReply)>(&mut conn);
    let (found, missed) = match tokio::time::timeout(RESPONSE_TIMEOUT, query).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(err)) => {
            counters.failed("replay", &key, &err);
            return Err(reason::UNREACHABLE);
        }
        Err(_) => {
            counters.failed("replay", &key, &"timed out");
            return Err(reason::UNREACHABLE);
        }
    };
    // `0-0` (a stream that was empty) is never an entry.
    if (found.ids.is_empty() && (ams, an) != (0, 0)) || missed.ids.len() > max {
        return Err(reason::TOO_OLD);
    }
    let mut senders = Senders::default();
    Ok(missed
        .ids
        .iter()
        .filter(|e| !sender(e).is_some_and(|(i, t)| senders.is_repeat(i, t)))
        .filter_map(|e| frame(after.epoch(), e, format))
        .collect())
}
