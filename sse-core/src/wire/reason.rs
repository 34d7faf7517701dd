//! Why a client gets a reset: one typed reason that the engines, the fan-out, the reset frame,
//! the log lines and the metrics all take, so a label can never drift from its cause.

use std::borrow::Cow;
use std::fmt;

/// Why a subscriber got an [`RESET_EVENT`](crate::RESET_EVENT): what it holds may be out of
/// date, and it should refetch its state before it goes on.
///
/// The reset event's data is `{"reason": <message>, "code": <label>}`: [`message`] is for
/// people, [`label`] is stable and bounded (the `reason` label of `sse_resets_total`).
///
/// ```
/// use sse_core::ResetReason;
///
/// let reason = ResetReason::MalformedId;
/// assert_eq!(reason.label(), "malformed_id");
/// assert!(reason.answers_resume());
/// assert_eq!(reason.to_string(), "Last-Event-ID is not an id this server gives out");
/// ```
///
/// [`message`]: ResetReason::message
/// [`label`]: ResetReason::label
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResetReason {
    /// The client's `Last-Event-ID` is not an event id at all.
    MalformedId,
    /// The id belongs to another stream: another server instance without a shared engine,
    /// or this one before a restart.
    Stale,
    /// The id is of this stream but newer than anything this server has seen or its engine
    /// gave out.
    Ahead,
    /// The event after which the client resumes is no longer kept (the history or the
    /// engine trimmed it).
    TooOld,
    /// The engine cannot be asked for the events the client missed right now.
    Unreachable,
    /// Entries this instance had not read yet were trimmed from the engine (it was cut off,
    /// or fell behind the trimming).
    Trimmed,
    /// The engine restarted empty or was flushed: earlier events are gone.
    NewEpoch,
    /// The subscriber fell behind further than the server's history reaches.
    FellBehind,
    /// Events published during an engine outage were dropped from a full outbox.
    Lost {
        /// How many (0 when an older server instance wrote the marker without a count).
        events: u64,
    },
}

impl ResetReason {
    /// What happened, in words, as sent in the reset event.
    pub fn message(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Self::MalformedId => "Last-Event-ID is not an id this server gives out",
            Self::Stale => "Last-Event-ID is from another server instance or an earlier run",
            Self::Ahead => "Last-Event-ID is newer than any event this server has seen",
            Self::TooOld => "Last-Event-ID is older than the server's history",
            Self::Unreachable => "the event store is unreachable; cannot replay",
            Self::Trimmed => {
                "events were trimmed from the event store before this server instance read them"
            }
            Self::NewEpoch => {
                "the event store restarted empty or was flushed; earlier events are gone"
            }
            Self::FellBehind => {
                "the subscriber fell behind further than the server's history reaches"
            }
            Self::Lost { events } => {
                return Cow::Owned(format!(
                    "{events} events were lost while the event store was unreachable"
                ))
            }
        })
    }

    /// A short, stable label: the `reason` of `sse_resets_total` and the reset's `code`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::MalformedId => "malformed_id",
            Self::Stale => "stale",
            Self::Ahead => "ahead",
            Self::TooOld => "too_old",
            Self::Unreachable => "unreachable",
            Self::Trimmed => "trimmed",
            Self::NewEpoch => "new_epoch",
            Self::FellBehind => "fell_behind",
            Self::Lost { .. } => "lost",
        }
    }

    /// Whether this reset answers a client's `Last-Event-ID` (it is then a resume outcome,
    /// `sse_resumes_total{outcome="reset"}`), rather than something that happened to a
    /// stream already open.
    pub fn answers_resume(&self) -> bool {
        matches!(
            self,
            Self::MalformedId | Self::Stale | Self::Ahead | Self::TooOld | Self::Unreachable
        )
    }

    /// The reason an engine's loss marker holds (written by any instance, any version): its
    /// message, whose leading number is the count.
    #[cfg(any(
        feature = "redis",
        feature = "nats",
        feature = "sqlite",
        feature = "postgres",
        feature = "testing",
        test
    ))]
    pub(crate) fn from_marker(text: &str) -> Self {
        let digits = text.split(|c: char| !c.is_ascii_digit()).next();
        let events = digits.and_then(|d| d.parse().ok()).unwrap_or(0);
        Self::Lost { events }
    }
}

impl fmt::Display for ResetReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::ResetReason;

    #[test]
    fn loss_markers_keep_their_count_whoever_wrote_them() {
        let written = ResetReason::Lost { events: 12 }.message();
        assert_eq!(
            ResetReason::from_marker(&written),
            ResetReason::Lost { events: 12 }
        );
        assert_eq!(
            ResetReason::from_marker("events were lost"),
            ResetReason::Lost { events: 0 }
        );
    }

    #[test]
    fn only_answers_to_a_last_event_id_are_resume_outcomes() {
        assert!(ResetReason::MalformedId.answers_resume());
        assert!(ResetReason::TooOld.answers_resume());
        assert!(!ResetReason::FellBehind.answers_resume());
        assert!(!ResetReason::Lost { events: 1 }.answers_resume());
        assert_ne!(ResetReason::MalformedId.label(), "lost");
    }
}
