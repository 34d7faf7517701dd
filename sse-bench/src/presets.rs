//! The named scenarios, and how command-line flags override them.

use std::time::Duration;

use crate::publisher::{Limit, Pace};
use crate::run::{Audience, PublishSpec, Scenario};

/// The scenarios that matter to users.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// 50k connections, keep-alive only: memory per connection.
    Idle,
    /// 5000 subscribers, 1000 events/s.
    Fanout,
    /// 100k events as fast as possible to 100 subscribers.
    Burst,
    /// 1000 readers and 100 stalled clients for 30 s: readers' p99 and server RSS stay flat.
    SlowConsumer,
    /// 1000 subscribers, 4 KiB events at 100/s and 64 KiB events at 10/s.
    BigPayload,
    /// 5000 subscribers while 256 connections publish as fast as they can.
    PublishStorm,
    /// N subscribers on a topic each, 500 events/s of audience one, N in 100, 1000, 5000,
    /// 10 000: server CPU per event as N grows.
    Targeted,
}

impl Preset {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Idle => "idle",
            Preset::Fanout => "fanout",
            Preset::Burst => "burst",
            Preset::SlowConsumer => "slow-consumer",
            Preset::BigPayload => "big-payload",
            Preset::PublishStorm => "publish-storm",
            Preset::Targeted => "targeted",
        }
    }
}

/// Flags that override a preset's defaults; `None` keeps the preset's value.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Reading subscribers.
    pub subs: Option<usize>,
    /// Stalled subscribers.
    pub stalled: Option<usize>,
    /// Events per second; 0 publishes as fast as possible.
    pub rate: Option<f64>,
    /// Publishing time (or hold time, for `idle`).
    pub seconds: Option<f64>,
    /// Number of events (instead of `seconds`).
    pub events: Option<u64>,
    /// Payload size.
    pub payload_bytes: Option<usize>,
    /// Publishing connections.
    pub publishers: Option<usize>,
    /// Longest wait for the last deliveries.
    pub drain_max: Option<f64>,
    /// Pause between connecting and measuring memory.
    pub settle: Option<f64>,
    /// Seconds of idle CPU measured before publishing (targeted: 2; others: 0).
    pub idle_baseline: Option<f64>,
    /// Payloads made of records (for `--compress`), not one repeated byte.
    pub rows: bool,
}

struct Defaults {
    subs: usize,
    stalled: usize,
    /// `None`: nothing is published.
    rate: Option<f64>,
    seconds: f64,
    events: Option<u64>,
    payload: usize,
    publishers: usize,
    audience: Audience,
}

fn defaults(preset: Preset) -> Vec<Defaults> {
    let base = Defaults {
        subs: 5000,
        stalled: 0,
        rate: Some(1000.0),
        seconds: 2.0,
        events: None,
        payload: 200,
        publishers: 16,
        audience: Audience::Everyone,
    };
    match preset {
        Preset::Idle => vec![Defaults {
            subs: 50_000,
            rate: None,
            seconds: 6.0,
            ..base
        }],
        Preset::Fanout => vec![base],
        Preset::Burst => vec![Defaults {
            subs: 100,
            rate: Some(0.0),
            events: Some(100_000),
            ..base
        }],
        Preset::SlowConsumer => vec![Defaults {
            subs: 1000,
            stalled: 100,
            rate: Some(500.0),
            seconds: 30.0,
            ..base
        }],
        Preset::BigPayload => vec![
            Defaults {
                subs: 1000,
                rate: Some(100.0),
                seconds: 5.0,
                payload: 4096,
                ..base
            },
            Defaults {
                subs: 1000,
                rate: Some(10.0),
                seconds: 5.0,
                payload: 65536,
                ..base
            },
        ],
        Preset::PublishStorm => vec![Defaults {
            rate: Some(0.0),
            seconds: 5.0,
            publishers: 256,
            ..base
        }],
        Preset::Targeted => [100, 1000, 5000, 10_000]
            .map(|subs| Defaults {
                subs,
                rate: Some(500.0),
                seconds: 4.0,
                audience: Audience::OnePerTopic,
                ..base
            })
            .into(),
    }
}

/// The scenarios of `preset` with `o` applied (big-payload has one per payload size, unless
/// `--payload-bytes` picks one).
pub fn scenarios(preset: Preset, o: &Overrides) -> Vec<Scenario> {
    let mut list = defaults(preset);
    if let (Some(bytes), Preset::BigPayload) = (o.payload_bytes, preset) {
        list.retain(|d| d.payload == bytes);
        if list.is_empty() {
            list = defaults(preset).into_iter().take(1).collect();
        }
    }
    if o.subs.is_some() && preset == Preset::Targeted {
        // `--subs` picks the one subscriber count to measure.
        list.truncate(1);
    }
    list.into_iter()
        .map(|d| {
            let seconds = o.seconds.unwrap_or(d.seconds);
            let payload = o.payload_bytes.unwrap_or(d.payload);
            let rate = o.rate.or(d.rate);
            let publish = rate.map(|rate| {
                let pace = if rate > 0.0 {
                    Pace::Rate(rate)
                } else {
                    Pace::Max
                };
                let limit = match (o.events.or(d.events), pace) {
                    (Some(n), _) => Limit::Count(n),
                    (None, Pace::Rate(r)) => Limit::Count((r * seconds).round().max(1.0) as u64),
                    (None, Pace::Max) => Limit::For(Duration::from_secs_f64(seconds)),
                };
                PublishSpec {
                    pace,
                    limit,
                    connections: o.publishers.unwrap_or(d.publishers).max(1),
                    payload_bytes: payload,
                    rows: o.rows,
                }
            });
            let readers = o.subs.unwrap_or(d.subs);
            let name = match preset {
                Preset::BigPayload => format!("{} {}", preset.name(), size(payload)),
                Preset::Targeted => format!("{} {readers} subscribers", preset.name()),
                _ => preset.name().to_owned(),
            };
            Scenario {
                name,
                readers,
                stalled: o.stalled.unwrap_or(d.stalled),
                hold: Duration::from_secs_f64(if publish.is_none() { seconds } else { 0.0 }),
                settle: Duration::from_secs_f64(o.settle.unwrap_or(1.0)),
                drain_max: Duration::from_secs_f64(o.drain_max.unwrap_or(30.0)),
                publish,
                audience: d.audience,
                // Where an event's audience is one subscriber, what the other connections
                // cost idle (keep-alives) would otherwise be charged to events.
                idle_baseline: Duration::from_secs_f64(if d.audience == Audience::OnePerTopic {
                    o.idle_baseline.unwrap_or(2.0)
                } else {
                    o.idle_baseline.unwrap_or(0.0)
                }),
            }
        })
        .collect()
}

/// `200 B`, `4 KiB`, `64 KiB`.
pub fn size(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fanout_defaults_match_the_issue() {
        let s = &scenarios(Preset::Fanout, &Overrides::default())[0];
        assert_eq!((s.readers, s.stalled), (5000, 0));
        let p = s.publish.as_ref().unwrap();
        assert_eq!(p.pace, Pace::Rate(1000.0));
        assert_eq!(p.limit, Limit::Count(2000));
        assert_eq!(p.payload_bytes, 200);
    }

    #[test]
    fn overrides_and_special_cases() {
        let o = Overrides {
            subs: Some(10),
            events: Some(20),
            payload_bytes: Some(4096),
            ..Overrides::default()
        };
        let s = scenarios(Preset::BigPayload, &o);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].name, "big-payload 4 KiB");
        assert_eq!(s[0].readers, 10);
        assert_eq!(s[0].publish.as_ref().unwrap().limit, Limit::Count(20));
        assert_eq!(
            scenarios(Preset::BigPayload, &Overrides::default()).len(),
            2
        );

        let idle = &scenarios(Preset::Idle, &Overrides::default())[0];
        assert!(idle.publish.is_none());
        assert_eq!(idle.readers, 50_000);
        assert_eq!(idle.hold, Duration::from_secs(6));

        let storm = &scenarios(Preset::PublishStorm, &Overrides::default())[0];
        let p = storm.publish.as_ref().unwrap();
        assert_eq!((p.pace, p.connections), (Pace::Max, 256));
        assert_eq!(p.limit, Limit::For(Duration::from_secs(5)));
    }

    #[test]
    fn targeted_runs_each_subscriber_count_or_the_one_asked_for() {
        let all = scenarios(Preset::Targeted, &Overrides::default());
        let subs: Vec<usize> = all.iter().map(|s| s.readers).collect();
        assert_eq!(subs, [100, 1000, 5000, 10_000]);
        assert!(all.iter().all(|s| s.audience == Audience::OnePerTopic));
        assert_eq!(all[0].publish.as_ref().unwrap().pace, Pace::Rate(500.0));
        let one = scenarios(
            Preset::Targeted,
            &Overrides {
                subs: Some(7),
                ..Overrides::default()
            },
        );
        assert_eq!(one.len(), 1);
        assert_eq!(
            (one[0].readers, one[0].name.as_str()),
            (7, "targeted 7 subscribers")
        );
    }
}
