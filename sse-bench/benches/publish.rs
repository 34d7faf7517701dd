//! The cost of `Broadcaster::publish` by subscriber count and payload size (it must be flat in
//! the subscriber count: the frame is encoded once), and the cost of handing one event to each
//! subscriber, ours (a `Bytes` clone) against the naive baseline (a `String` clone and an
//! `actix_web_lab::sse::Event` formatted per subscriber).

use std::convert::Infallible;
use std::future::ready;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web_lab::sse;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures_util::{Stream, StreamExt};
use sse_bench::server::Tick;
use sse_core::Broadcaster;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
}

fn short<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    group
}

/// Publish with N open (unpolled) subscribers: serialize, encode, history, channel send.
fn publish(c: &mut Criterion) {
    let rt = runtime();
    let _guard = rt.enter();
    let mut group = short(c, "publish");
    for bytes in [200, 4096, 65536] {
        let tick = Tick::new(1, 1, bytes);
        group.throughput(Throughput::Bytes(bytes as u64));
        for subs in [1, 100, 10_000] {
            let events = Broadcaster::builder().build();
            let streams: Vec<_> = (0..subs)
                .map(|_| events.subscribe(None).expect("open"))
                .collect();
            group.bench_with_input(
                BenchmarkId::new(format!("{bytes}B"), subs),
                &subs,
                |b, _| b.iter(|| events.publish("tick", &tick).expect("published")),
            );
            drop(streams);
        }
    }
    group.finish();
}

fn poll_ready<S: Stream + Unpin>(s: &mut S, cx: &mut Context<'_>) -> usize {
    let mut n = 0;
    while let Poll::Ready(Some(_)) = s.poll_next_unpin(cx) {
        n += 1;
    }
    n
}

/// One event to 100 subscribers, each polled until it has its bytes.
fn deliver(c: &mut Criterion) {
    let rt = runtime();
    let _guard = rt.enter();
    let waker = futures_util::task::noop_waker_ref();
    let mut cx = Context::from_waker(waker);
    let subs = 100;
    let mut group = short(c, "deliver_to_100");
    for bytes in [200, 4096] {
        let tick = Tick::new(1, 1, bytes);
        group.throughput(Throughput::Elements(subs as u64));

        let events = Broadcaster::builder().keep_alive(None).build();
        let mut streams: Vec<_> = (0..subs)
            .map(|_| events.subscribe(None).expect("open"))
            .collect();
        for s in &mut streams {
            poll_ready(s, &mut cx);
        }
        group.bench_function(BenchmarkId::new("ours", format!("{bytes}B")), |b| {
            b.iter(|| {
                events.publish("tick", &tick).expect("published");
                streams
                    .iter_mut()
                    .map(|s| poll_ready(s, &mut cx))
                    .sum::<usize>()
            })
        });

        let (tx, _) = broadcast::channel::<String>(100);
        let mut bodies: Vec<_> = (0..subs)
            .map(|_| {
                let messages = BroadcastStream::new(tx.subscribe())
                    .filter_map(|m| ready(m.ok()))
                    .map(|m| Ok::<_, Infallible>(sse::Event::Data(sse::Data::new(m))));
                Box::pin(sse::Sse::from_stream(messages))
            })
            .collect();
        group.bench_function(BenchmarkId::new("naive", format!("{bytes}B")), |b| {
            b.iter(|| {
                let message = serde_json::json!({ "event": "tick", "data": &tick }).to_string();
                let _ = tx.send(message);
                let mut n = 0;
                for body in &mut bodies {
                    while let Poll::Ready(Some(_)) = Pin::as_mut(body).poll_next(&mut cx) {
                        n += 1;
                    }
                }
                n
            })
        });
    }
    group.finish();
}

criterion_group!(benches, publish, deliver);
criterion_main!(benches);
