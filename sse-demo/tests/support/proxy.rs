//! A loopback TCP proxy that can cut every connection through it, to drop a browser's event
//! stream while the server keeps running.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

pub struct Proxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    open: Mutex<Vec<TcpStream>>,
    refusing: AtomicBool,
    stopped: AtomicBool,
}

impl Proxy {
    /// Forwards connections on a new loopback port to `target`.
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).expect("non-blocking accept");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            open: Mutex::new(Vec::new()),
            refusing: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || {
            // Ends when the proxy is dropped.
            while !accepting.stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => accepting.forward(client, target),
                    Err(err) if err.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Proxy { addr, shared }
    }

    /// Closes every open connection; with `refuse`, also closes new ones at once until
    /// [`Proxy::resume`].
    pub fn cut(&self, refuse: bool) {
        self.shared.refusing.store(refuse, Ordering::SeqCst);
        let open = std::mem::take(&mut *self.shared.lock());
        for stream in open {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub fn resume(&self) {
        self.shared.refusing.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.cut(true);
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<TcpStream>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn forward(&self, client: TcpStream, target: SocketAddr) {
        if self.refusing.load(Ordering::SeqCst) {
            return; // dropped: closed at once
        }
        let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
            return; // the server is down: so is the connection
        };
        let _ = client.set_nonblocking(false);
        let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) else {
            return;
        };
        self.lock().extend([c, s]);
        let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
            return;
        };
        std::thread::spawn(move || pump(client, server));
        std::thread::spawn(move || pump(s2, c2));
    }
}

/// Copies `from` to `to` until either side closes, then closes both.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
