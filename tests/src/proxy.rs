//! A TCP proxy for cutting a link between two processes on loopback: every connection
//! through it can be reset at once, and new ones refused, while both ends keep running.
//! It can also slow the link down to a given rate (a slow network), e.g. to make a
//! migration last long enough for a fault to strike at a chosen phase.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    /// Bytes per second in each direction of each connection; 0: unlimited.
    rate: Arc<AtomicU64>,
}

impl Proxy {
    /// Forwards `127.0.0.1:<port>` to `upstream`.
    pub fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let rate = Arc::new(AtomicU64::new(0));
        let (c, s, r) = (cut.clone(), streams.clone(), rate.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if c.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                s.lock()
                    .unwrap()
                    .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    r.clone(),
                );
                pipe(server, client, r.clone());
            }
        });
        Self {
            port,
            cut,
            streams,
            rate,
        }
    }

    /// Limits every connection, in each direction, to `bytes_per_sec` (`None`: no limit).
    pub fn set_rate(&self, bytes_per_sec: Option<u64>) {
        self.rate
            .store(bytes_per_sec.unwrap_or(0), Ordering::SeqCst);
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Resets every connection and refuses new ones until [`Proxy::heal`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.streams.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, rate: Arc<AtomicU64>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 64 * 1024];
        loop {
            // Limited: at most a fiftieth of a second's worth per read, paced after it.
            let limit = rate.load(Ordering::SeqCst);
            let max = match limit {
                0 => buf.len(),
                r => (r as usize / 50).clamp(1, buf.len()),
            };
            match from.read(&mut buf[..max]) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    if limit > 0 {
                        std::thread::sleep(Duration::from_secs_f64(n as f64 / limit as f64));
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}
