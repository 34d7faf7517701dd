//! What `#[emit_event]` costs on a handler call, with 0 and 1000 subscribers: the annotated
//! handler against the same handler unannotated (no event) and against one that publishes the
//! same event by hand (the wrapper's own overhead). Called directly, and through actix's
//! service stack (JSON extraction and response included).

use std::time::Duration;

use actix_web::{test, web, App};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use futures_util::FutureExt;
use sse_bench::server::Tick;
use sse_core::{emit_event, Broadcaster};

async fn plain(body: web::Json<Tick>) -> web::Json<Tick> {
    body
}

async fn by_hand(events: Broadcaster, body: web::Json<Tick>) -> web::Json<Tick> {
    let _ = events.publish("tick", &*body);
    body
}

#[emit_event("tick")]
async fn annotated(body: web::Json<Tick>) -> web::Json<Tick> {
    body
}

fn broadcaster(subs: usize) -> (Broadcaster, Vec<sse_core::EventStream>) {
    let events = Broadcaster::builder().build();
    let streams = (0..subs)
        .map(|_| events.subscribe(None).expect("open"))
        .collect();
    (events, streams)
}

fn direct(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let tick = Tick::new(1, 1, 200);
    let mut group = c.benchmark_group("emit_direct");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30);
    for subs in [0, 1000] {
        let (events, _streams) = broadcaster(subs);
        // Every variant runs inside the same scope, so only the handler differs.
        group.bench_function(BenchmarkId::new("plain", subs), |b| {
            b.iter(|| {
                events
                    .scope(plain(web::Json(tick.clone())))
                    .now_or_never()
                    .expect("ready")
            })
        });
        group.bench_function(BenchmarkId::new("by_hand", subs), |b| {
            b.iter(|| {
                events
                    .scope(by_hand(events.clone(), web::Json(tick.clone())))
                    .now_or_never()
                    .expect("ready")
            })
        });
        group.bench_function(BenchmarkId::new("annotated", subs), |b| {
            b.iter(|| {
                events
                    .scope(annotated(web::Json(tick.clone())))
                    .now_or_never()
                    .expect("ready")
            })
        });
    }
    group.finish();
}

fn through_actix(c: &mut Criterion) {
    let sys = actix_web::rt::System::new();
    let tick = Tick::new(1, 1, 200);
    let body = serde_json::to_vec(&tick).expect("json");
    let mut group = c.benchmark_group("emit_http");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30);
    for subs in [0, 1000] {
        let (events, _streams) = sys.block_on(async { broadcaster(subs) });
        let app = sys.block_on(test::init_service(
            App::new()
                .configure(events.service("/events"))
                .route("/plain", web::post().to(plain))
                .route("/by_hand", web::post().to(by_hand))
                .route("/annotated", web::post().to(annotated)),
        ));
        for route in ["plain", "by_hand", "annotated"] {
            group.bench_function(BenchmarkId::new(route, subs), |b| {
                b.iter(|| {
                    sys.block_on(async {
                        let req = test::TestRequest::post()
                            .uri(&format!("/{route}"))
                            .insert_header(("content-type", "application/json"))
                            .set_payload(body.clone())
                            .to_request();
                        let resp = test::call_service(&app, req).await;
                        assert!(resp.status().is_success());
                        test::read_body(resp).await
                    })
                })
            });
        }
        assert!(events.stats().published > 0);
    }
    group.finish();
}

criterion_group!(benches, direct, through_actix);
criterion_main!(benches);
