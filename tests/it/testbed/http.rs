//! The one HTTP server the tests use.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The one HTTP server the tests use, on 127.0.0.1, in a thread of this process: one request per
/// connection, answered and closed. It stops when dropped.
pub struct HttpServer {
    pub port: u16,
    pub url: String,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl HttpServer {
    /// Serves the files under `root` by their path (200), and 404 for anything else.
    pub fn files(root: &Path) -> HttpServer {
        let root = root.to_path_buf();
        HttpServer::start(move |path| {
            let file = (!path.split('/').any(|p| p == ".." || p.is_empty())).then(|| root.join(path));
            match file.and_then(|f| std::fs::read(f).ok()) {
                Some(body) => http_response("200 OK", &body),
                None => http_response("404 Not Found", b"not found"),
            }
        })
    }

    /// Answers every request with `response` exactly: status line, headers and body.
    pub fn raw(response: &'static str) -> HttpServer {
        HttpServer::start(move |_| response.as_bytes().to_vec())
    }

    /// Answers each request with what `answer` makes of its path (no leading `/`, no query).
    pub fn start(answer: impl Fn(&str) -> Vec<u8> + Send + 'static) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, stopped) = (Arc::clone(&requests), Arc::clone(&stop));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let _ = answer_one(stream, &answer, &log);
            }
        });
        HttpServer { port, url: format!("http://127.0.0.1:{port}"), requests, stop }
    }

    /// Every path requested, in order.
    pub fn requested(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread, which then sees the flag and ends, closing the listener.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A complete HTTP/1.1 response that closes the connection.
fn http_response(status: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn answer_one(
    stream: std::net::TcpStream,
    answer: &impl Fn(&str) -> Vec<u8>,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let path = path.split('?').next().unwrap_or("/").trim_start_matches('/').to_string();
    let response = answer(&path);
    log.lock().expect("lock").push(path);
    let mut stream = stream;
    stream.write_all(&response)?;
    stream.flush()
}
