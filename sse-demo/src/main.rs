//! `sse-demo`: the users service with its live page. Configuration and wiring only; the app
//! itself is `sse_demo::app_config`.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::time::Duration;

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::Server;
use actix_web::rt::net::TcpStream;
use actix_web::{middleware, web, App, HttpServer};
use clap::Parser;
use sse_core::Broadcaster;
use sse_demo::login::LoginKey;
use sse_demo::observe::Observe;
use tracing_subscriber::EnvFilter;

/// Users CRUD on SQLite or PostgreSQL with a page that updates live over Server-Sent Events.
// No `Debug`: the database URL, the Redis URL and the JWT secret must not end up in a log by
// accident.
#[derive(Parser)]
#[command(version, about)]
struct Config {
    /// TCP port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 2345)]
    port: u16,

    /// Address to listen on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1")]
    bind: String,

    /// The database: a SQLite file path, a `sqlite:` URL or `sqlite::memory:` (a missing file is
    /// created), or a PostgreSQL URL like `postgres://user:password@127.0.0.1:5432/app`, which
    /// several instances can share.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sse-demo.db",
        hide_env_values = true
    )]
    database_url: String,

    /// An origin allowed to call the API from another site, like `https://app.example.com`.
    /// Repeat the flag for several; the page's own origin is always allowed.
    #[arg(long = "cors-origin", env = "CORS_ORIGINS", value_delimiter = ',')]
    cors_origins: Vec<String>,

    /// Events kept for clients that reconnect with `Last-Event-ID`.
    #[arg(long, env = "SSE_HISTORY", default_value_t = 1024)]
    history: usize,

    /// Seconds between keep-alive comments on an idle stream (0 disables them).
    #[arg(long, env = "SSE_KEEP_ALIVE_SECS", default_value_t = 5)]
    keep_alive_secs: u64,

    /// Secret (at least 32 bytes) for the HS256 tokens of the demo-only `POST /api/v1/login`,
    /// which authorize the private `users/{id}/private` events and show a user its own email.
    /// Default: random for each run.
    #[arg(long, env = "SSE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,

    /// Serve `POST /api/v1/login`, which hands out a token for any user id WITHOUT A
    /// PASSWORD. For trying the private events locally; never on a reachable address.
    #[arg(long, env = "SSE_DEMO_LOGIN")]
    demo_login: bool,

    /// Send the event stream gzip-encoded to clients that accept it (browsers do), each event
    /// compressed once for all of them.
    #[arg(long, env = "SSE_COMPRESS")]
    compress: bool,

    /// Milliseconds a browser waits before reconnecting a dropped stream.
    #[arg(long, env = "SSE_RETRY_MS", default_value_t = 1000)]
    retry_ms: u64,

    /// Share the event stream with other instances through Redis, like
    /// `redis://127.0.0.1:6379`, `rediss://user:password@host:6380` (TLS). Default: in
    /// memory, this instance only.
    // The URL may hold a password: `--help` must not print the environment's value.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis: Option<String>,

    /// The Redis stream key the instances share (with `--redis`).
    #[arg(long, env = "SSE_REDIS_STREAM", default_value = "sse-demo:events")]
    redis_stream: String,

    /// Most event streams open at once; past it, 503 with `Retry-After`.
    #[arg(long, env = "SSE_MAX_SUBSCRIBERS", default_value_t = 10_000)]
    max_subscribers: usize,

    /// Most event streams open at once from one client address (IPv6: per /64).
    #[arg(long, env = "SSE_MAX_SUBSCRIBERS_PER_IP", default_value_t = 64)]
    max_subscribers_per_ip: usize,

    /// A reverse proxy (an address or block, like `127.0.0.1` or `10.0.0.0/8`) whose
    /// `--forwarded-header` names the client for the per-address limit. Repeatable.
    #[arg(
        long = "trusted-proxy",
        env = "SSE_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<sse_core::http::AddrBlock>,

    /// The one header a trusted proxy names the client in (the others are ignored).
    #[arg(
        long,
        env = "SSE_FORWARDED_HEADER",
        value_enum,
        default_value_t = ForwardedHeader::XForwardedFor
    )]
    forwarded_header: ForwardedHeader,

    /// Share the event stream with other instances through NATS JetStream, like
    /// `nats://127.0.0.1:4222` (`tls://` for TLS). Default: in memory, this instance only.
    #[arg(
        long,
        env = "NATS_URL",
        hide_env_values = true,
        conflicts_with = "redis"
    )]
    nats: Option<String>,

    /// The JetStream stream the instances share (with `--nats`).
    #[arg(long, env = "SSE_NATS_STREAM", default_value = "sse-demo-events")]
    nats_stream: String,

    #[command(flatten)]
    tls: sse_demo::tls::TlsArgs,

    #[command(flatten)]
    observe: sse_demo::observe::ObserveArgs,

    #[command(flatten)]
    mercure: sse_demo::mercure::MercureArgs,
}

/// The operator's listener (`--ops-bind`): `/metrics` and the inspector, apart from the public
/// address so that whoever reaches the site cannot read them. Plain HTTP, one worker.
fn ops_server(
    addr: SocketAddr,
    observe: &Observe,
    events: &Broadcaster,
) -> Result<(Server, Vec<SocketAddr>), String> {
    let server = HttpServer::new({
        let (observe, events) = (observe.clone(), events.clone());
        move || {
            App::new()
                .wrap(middleware::Logger::new("%r %s %Dms"))
                .configure(observe.ops_config(&events))
        }
    })
    .workers(1)
    // Stopped after the public server, by `main`.
    .disable_signals()
    .shutdown_timeout(5)
    .bind(addr)
    .map_err(|err| format!("cannot listen on --ops-bind {addr}: {err}"))?;
    let addrs = server.addrs();
    Ok((server.run(), addrs))
}

/// `--forwarded-header`: the library's choices, as clap values.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ForwardedHeader {
    XForwardedFor,
    Forwarded,
    XRealIp,
}

impl From<ForwardedHeader> for sse_core::http::ForwardedHeader {
    fn from(header: ForwardedHeader) -> Self {
        match header {
            ForwardedHeader::XForwardedFor => Self::XForwardedFor,
            ForwardedHeader::Forwarded => Self::Forwarded,
            ForwardedHeader::XRealIp => Self::XRealIp,
        }
    }
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::parse();
    // `CORS_ORIGINS="https://a.example, https://b.example"` reads naturally with spaces.
    config.cors_origins = (config.cors_origins.iter())
        .map(|origin| origin.trim().to_owned())
        .filter(|origin| !origin.is_empty())
        .collect();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    // The URLs may carry a password: only their redacted forms are ever printed.
    let database = sse_core::engine::redact_url(&config.database_url);
    let pool = sse_demo::db::connect(&config.database_url)
        .await
        .map_err(|err| format!("cannot open database {database:?}: {err}"))?;
    let keep_alive =
        (config.keep_alive_secs > 0).then(|| Duration::from_secs(config.keep_alive_secs));
    let login_key = match &config.jwt_secret {
        Some(secret) => LoginKey::from_secret(secret)?,
        None => LoginKey::random(),
    };
    if config.demo_login {
        tracing::warn!(
            "--demo-login: POST /api/v1/login hands out a token for any user id without a \
             password; never use it on a reachable address"
        );
    }
    // Once, outside `HttpServer::new`: every worker must publish to and serve the same stream.
    // The history lives in the database, where every handler writes its events in its own
    // transaction: an event exists if and only if its change committed.
    let log = pool
        .event_log()
        .await
        .map_err(|err| format!("cannot open the event log in database {database:?}: {err}"))?;
    let mut builder = Broadcaster::builder().event_log(&log);
    if let Some(url) = &config.redis {
        builder = builder.redis(url, &config.redis_stream)?;
    }
    if let Some(url) = &config.nats {
        builder = builder.nats(url, &config.nats_stream)?;
    }
    let events = builder
        .history(config.history)
        .keep_alive(keep_alive)
        .retry(Duration::from_millis(config.retry_ms))
        .compress(config.compress)
        .authorizer(login_key.authorizer())
        .private_topics([
            LoginKey::private_topics()?,
            sse_demo::observe::inspector_topic()?,
        ])
        .max_subscribers(config.max_subscribers)
        .max_subscribers_per_ip(config.max_subscribers_per_ip)
        .trusted_proxies(config.trusted_proxies.iter().copied())
        .forwarded_header(config.forwarded_header.into())
        .build();
    let mercure = (config.mercure.hub(&config.cors_origins)).map_err(|err| err.to_string())?;
    let observe = config.observe.start(&events, &login_key);
    let presence = sse_demo::presence::Presence::start(&events);

    let server = HttpServer::new({
        let (pool, events, origins) = (pool.clone(), events.clone(), config.cors_origins.clone());
        let (login_key, demo_login) = (login_key.clone(), config.demo_login);
        let presence = presence.clone();
        let mercure = mercure.clone();
        move || {
            App::new()
                .wrap(middleware::Condition::new(
                    mercure.is_some(),
                    sse_core::mercure::Discovery::new(sse_core::mercure::PATH),
                ))
                .wrap(presence.middleware())
                .wrap(middleware::Logger::new("%r %s %Dms"))
                .wrap(events.snapshot_id_middleware())
                // First, outside the application's CORS: the hub answers CORS itself
                // (`--mercure-cors-origin`), and two middlewares would send two sets of headers.
                .configure(|cfg| {
                    if let Some(hub) = &mercure {
                        events.mercure(hub.clone())(cfg);
                    }
                })
                // Everything else: a scope that matches every path, so it goes last.
                .service(
                    web::scope("")
                        .wrap(sse_demo::cors(&origins))
                        .configure(sse_demo::app_config(pool.clone(), events.clone()))
                        .configure(presence.config())
                        .configure(|cfg| {
                            if demo_login {
                                sse_demo::login::config(login_key.clone())(cfg);
                            } else {
                                sse_demo::login::key_config(login_key.clone())(cfg);
                            }
                        }),
                )
        }
    })
    // `events.serve` handles Ctrl-C and SIGTERM: it ends the open streams, then stops the
    // server, so the graceful drain has nothing left to wait for.
    .disable_signals()
    // A browser that closes a page closes the stream's connection: end the stream at that EOF
    // rather than at the next keep-alive write that fails (up to two periods later), so that
    // the page stops counting as watching (`presence`) at once.
    .h1_allow_half_closed(false)
    // Each event leaves when written, not with the next one (Nagle's algorithm), over TLS too.
    .on_connect(|conn, ext| {
        sse_core::http::no_delay(conn, ext);
        if let Some(tls) = conn.downcast_ref::<TlsStream<TcpStream>>() {
            let _ = tls.get_ref().0.set_nodelay(true);
        }
    })
    .shutdown_timeout(5);
    let tls = config.tls.server_config()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let addr = (config.bind.as_str(), config.port);
    let server = match tls {
        Some(tls) => server.bind_rustls_0_23(addr, tls),
        None => server.bind(addr),
    }
    .map_err(|err| format!("cannot listen on {}:{}: {err}", config.bind, config.port))?;

    let ops = match config.observe.ops_bind {
        Some(addr) => Some(ops_server(addr, &observe, &events)?),
        None => None,
    };

    for addr in server.addrs() {
        // The first line on stdout, so scripts and tests can read the address.
        println!("sse-demo listening on {scheme}://{addr}/");
    }
    for addr in ops.iter().flat_map(|(_, addrs)| addrs) {
        println!("sse-demo operations on http://{addr}/");
        if observe.has_inspector() {
            tracing::info!(
                "inspector: open http://{addr}{}",
                sse_demo::observe::INSPECTOR_PATH
            );
        }
    }
    std::io::stdout().flush()?;
    tracing::info!(
        database = %database,
        backend = pool.backend(),
        origins = ?config.cors_origins,
        redis = %config.redis.as_deref().map_or(
            "(not used: events stay in this instance)".into(),
            sse_core::engine::redact_url
        ),
        // Never the NATS URL: it can hold credentials.
        nats = config.nats.is_some(),
        mercure = mercure.is_some(),
        "started"
    );

    let ops = ops.map(|(ops, _)| {
        let handle = ops.handle();
        actix_web::rt::spawn(async move {
            if let Err(err) = ops.await {
                tracing::error!(%err, "the operations listener failed");
            }
        });
        handle
    });
    events.serve(server.run()).await?;
    if let Some(ops) = ops {
        // Its inspector stream ended with the others in `serve`.
        ops.stop(true).await;
    }
    tracing::debug!("server stopped; closing the database");
    pool.close().await;
    tracing::info!("stopped");
    Ok(())
}
