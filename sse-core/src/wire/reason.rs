//! Why a client gets a reset: the reasons the event logs and the fan-out share, sent in the
//! reset frame's data and used as bounded metric labels.

/// The id belongs to another stream, or to this one before it was recreated.
pub(crate) const STALE: &str = "Last-Event-ID is from another server instance or an earlier run";
/// The entry after which the client resumes was trimmed, or it missed too many.
pub(crate) const TOO_OLD: &str = "Last-Event-ID is older than the server's history";
/// Entries this instance had not read yet were trimmed from the log (it was cut off, or
/// fell behind the trimming).
pub(crate) const TRIMMED: &str =
    "events were trimmed from the event store before this server instance read them";
/// The log restarted empty or was flushed.
pub(crate) const NEW_EPOCH: &str =
    "the event store restarted empty or was flushed; earlier events are gone";
/// The log cannot be asked right now.
pub(crate) const UNREACHABLE: &str = "the event store is unreachable; cannot replay";
