//! A lean HTTP/1.1 client: one keep-alive pool per target, and the request
//! written and the response read by the iteration's own task.
//!
//! Why not reqwest or hyper's client: the runner must classify failures
//! exactly (connect vs timeout vs protocol), must never queue a request
//! behind a busy connection (a hidden queue is coordinated omission inside
//! the client), and must be cheap enough per request that one core keeps up
//! with `wrk` (see docs/performance.md). Handing the socket to the task that
//! needs it — one `write`, then reads parsed with `httparse` — has no channel
//! or extra task per request. Addresses are resolved once before the run, so
//! DNS is never on the hot path.
//!
//! Scope: plain HTTP/1.1 (no TLS, no pipelining, no upgrades); bodies framed
//! by `Content-Length`, `chunked`, or connection close.

use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use tokio::net::TcpStream;

use crate::config::Target;

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest response body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Failure classes, as counted in the report and the `outcome` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// TCP connect failed or exceeded `http.connect_timeout`.
    Connect,
    /// The whole request (connect, send, headers, body) exceeded `http.timeout`.
    Timeout,
    /// The connection broke or the response was not valid HTTP/1.1.
    Protocol,
}

/// A failed request: its class and a human-readable reason.
#[derive(Debug, Clone)]
pub struct RequestError {
    pub class: FailureClass,
    pub message: String,
}

impl RequestError {
    fn protocol(message: impl Into<String>) -> RequestError {
        RequestError { class: FailureClass::Protocol, message: message.into() }
    }
}

/// A complete response (the body is always read so the connection can be reused).
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What to send; the client adds `Host`, `Content-Length` and the target's path prefix.
#[derive(Debug)]
pub struct RequestSpec<'a> {
    pub method: Method,
    /// Origin-form path and query, starting with `/`.
    pub path: &'a str,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Option<Bytes>,
}

/// One keep-alive connection with its reusable buffers.
struct Conn {
    stream: TcpStream,
    /// Read buffer; `filled` bytes of it are valid during a read.
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
}

struct Origin {
    name: String,
    url: String,
    addrs: Vec<SocketAddr>,
    authority: String,
    base_path: String,
    /// Idle connections. A std mutex: held for one push or pop.
    idle: Mutex<Vec<Conn>>,
}

/// The runner's HTTP client; one per run, shared by all iterations.
pub struct Client {
    origins: Vec<Origin>,
    timeout: Duration,
    connect_timeout: Duration,
}

impl Client {
    /// Resolves every target once. Fails (naming the target) when a host does
    /// not resolve, or resolves to a non-loopback address while it is not in
    /// `allow_hosts`.
    pub async fn resolve(
        targets: &[(String, Target)],
        allow_hosts: &[String],
        timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Client, String> {
        let mut origins = Vec::new();
        for (name, t) in targets {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((t.host.as_str(), t.port))
                .await
                .map_err(|e| format!("target `{name}` ({}): cannot resolve host `{}`: {e}", t.url, t.host))?
                .collect();
            if addrs.is_empty() {
                return Err(format!("target `{name}` ({}): host `{}` has no address", t.url, t.host));
            }
            // `localhost` is allowed because it means loopback; make sure it does.
            if !allow_hosts.iter().any(|h| h == &t.host)
                && let Some(a) = addrs.iter().find(|a| !a.ip().is_loopback())
            {
                return Err(format!(
                    "target `{name}` ({}): `{}` resolves to {} which is not loopback; add the host to allow_hosts to load it",
                    t.url,
                    t.host,
                    a.ip()
                ));
            }
            origins.push(Origin {
                name: name.clone(),
                url: t.url.clone(),
                addrs,
                authority: t.authority.clone(),
                base_path: t.base_path.clone(),
                idle: Mutex::new(Vec::new()),
            });
        }
        Ok(Client { origins, timeout, connect_timeout })
    }

    /// Opens (and closes) one TCP connection to every target; sends no bytes.
    /// Run before any load so an unreachable target is a config error, not
    /// a run full of connect errors.
    pub async fn preflight(&self) -> Result<(), String> {
        for o in &self.origins {
            connect_any(&o.addrs, self.connect_timeout)
                .await
                .map_err(|e| format!("target `{}` ({}) is unreachable: {}", o.name, o.url, e.message))?;
        }
        Ok(())
    }

    /// Sends one request to target `origin` (its index in the order given to
    /// [`Client::resolve`]) and reads the whole response, within `http.timeout`.
    pub async fn send(&self, origin: usize, spec: RequestSpec<'_>) -> Result<Response, RequestError> {
        let o = &self.origins[origin];
        match tokio::time::timeout(self.timeout, self.send_inner(o, spec)).await {
            Ok(r) => r,
            Err(_) => {
                Err(RequestError { class: FailureClass::Timeout, message: format!("no complete response within {:?}", self.timeout) })
            }
        }
    }

    async fn send_inner(&self, o: &Origin, spec: RequestSpec<'_>) -> Result<Response, RequestError> {
        let idempotent = matches!(spec.method, Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS);
        let is_head = spec.method == Method::HEAD;
        let mut attempt = 0;
        loop {
            let (mut conn, reused) = match checkout(o) {
                Some(c) => (c, true),
                None => {
                    let stream = connect_any(&o.addrs, self.connect_timeout).await?;
                    (Conn { stream, rbuf: vec![0; 8192], wbuf: Vec::with_capacity(512) }, false)
                }
            };
            encode(&mut conn.wbuf, o, &spec);
            let result = match write_all(&conn.stream, &conn.wbuf).await {
                Ok(()) => read_response(&mut conn, is_head).await,
                Err(e) => Err(ReadError::Io { error: e, got_bytes: false }),
            };
            match result {
                Ok((resp, keep_alive)) => {
                    if keep_alive {
                        o.idle.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
                    }
                    return Ok(resp);
                }
                // A kept-alive connection the server closed while idle fails
                // before any response byte; one retry on a fresh connection is
                // safe for idempotent methods (and what browsers do).
                Err(e) if reused && attempt == 0 && idempotent && !e.got_bytes() => {
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(RequestError::protocol(e.to_string())),
            }
        }
    }
}

/// An idle connection that the server has not closed, if any.
fn checkout(o: &Origin) -> Option<Conn> {
    loop {
        let mut c = o.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()?;
        // Readable while idle means EOF, a reset or stray bytes: not reusable.
        // (No syscall unless the reactor saw the socket become readable.)
        match c.stream.try_read(&mut c.rbuf[..1]) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(c),
            _ => continue,
        }
    }
}

fn encode(w: &mut Vec<u8>, o: &Origin, spec: &RequestSpec<'_>) {
    w.clear();
    w.extend_from_slice(spec.method.as_str().as_bytes());
    w.push(b' ');
    w.extend_from_slice(o.base_path.as_bytes());
    w.extend_from_slice(spec.path.as_bytes());
    w.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    w.extend_from_slice(o.authority.as_bytes());
    w.extend_from_slice(b"\r\n");
    for (k, v) in &spec.headers {
        w.extend_from_slice(k.as_str().as_bytes());
        w.extend_from_slice(b": ");
        w.extend_from_slice(v.as_bytes());
        w.extend_from_slice(b"\r\n");
    }
    let has_body = spec.body.is_some() || matches!(spec.method, Method::POST | Method::PUT | Method::PATCH);
    if has_body {
        let len = spec.body.as_ref().map_or(0, |b| b.len());
        w.extend_from_slice(b"content-length: ");
        w.extend_from_slice(len.to_string().as_bytes());
        w.extend_from_slice(b"\r\n");
    }
    w.extend_from_slice(b"\r\n");
    if let Some(b) = &spec.body {
        w.extend_from_slice(b);
    }
}

async fn write_all(stream: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match stream.try_write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[derive(Debug)]
enum ReadError {
    Io { error: io::Error, got_bytes: bool },
    Closed { got_bytes: bool },
    Invalid(String),
}

impl ReadError {
    fn got_bytes(&self) -> bool {
        match self {
            ReadError::Io { got_bytes, .. } | ReadError::Closed { got_bytes } => *got_bytes,
            ReadError::Invalid(_) => true,
        }
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io { error, .. } => write!(f, "connection error: {error}"),
            ReadError::Closed { got_bytes: false } => f.write_str("connection closed before a response"),
            ReadError::Closed { got_bytes: true } => f.write_str("connection closed in the middle of the response"),
            ReadError::Invalid(m) => write!(f, "invalid response: {m}"),
        }
    }
}

/// Reads more bytes into `rbuf[filled..]`, growing it up to `limit`.
async fn fill(conn: &mut Conn, filled: &mut usize, limit: usize) -> Result<(), ReadError> {
    if conn.rbuf.len() - *filled < 4096 {
        if conn.rbuf.len() >= limit {
            return Err(ReadError::Invalid(format!("response larger than {limit} bytes")));
        }
        let new_len = (conn.rbuf.len() * 2).min(limit).max(*filled + 4096);
        conn.rbuf.resize(new_len, 0);
    }
    loop {
        match conn.stream.try_read(&mut conn.rbuf[*filled..]) {
            Ok(0) => {
                return Err(ReadError::Closed { got_bytes: *filled > 0 });
            }
            Ok(n) => {
                *filled += n;
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                conn.stream.readable().await.map_err(|e| ReadError::Io { error: e, got_bytes: *filled > 0 })?;
            }
            Err(e) => {
                return Err(ReadError::Io { error: e, got_bytes: *filled > 0 });
            }
        }
    }
}

/// How the body of a response is delimited.
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

/// A parsed response head; `len` bytes of the read buffer.
struct Head {
    status: StatusCode,
    /// HTTP/1.`version`.
    version: u8,
    len: usize,
    headers: HeaderMap,
}

impl Head {
    /// Whether a comma-separated header has `token` (case-insensitive).
    fn has_token(&self, name: &HeaderName, token: &str) -> bool {
        self.headers.get_all(name).iter().any(|v| v.to_str().is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))))
    }

    /// How the body is framed, and whether the connection may be reused after it.
    fn framing(&self, is_head: bool) -> Result<(Framing, bool), ReadError> {
        let keep_alive = self.version == 1 && !self.has_token(&http::header::CONNECTION, "close");
        if is_head || self.status == StatusCode::NO_CONTENT || self.status == StatusCode::NOT_MODIFIED {
            return Ok((Framing::Empty, keep_alive));
        }
        if self.has_token(&http::header::TRANSFER_ENCODING, "chunked") {
            return Ok((Framing::Chunked, keep_alive));
        }
        let Some(v) = self.headers.get(http::header::CONTENT_LENGTH) else {
            return Ok((Framing::UntilClose, false));
        };
        let n: usize =
            v.to_str().ok().and_then(|s| s.trim().parse().ok()).ok_or_else(|| ReadError::Invalid("bad content-length".into()))?;
        if n > MAX_BODY {
            return Err(ReadError::Invalid(format!("body of {n} bytes is over the {MAX_BODY}-byte limit")));
        }
        Ok((Framing::Length(n), keep_alive))
    }
}

/// Reads one response; returns it and whether the connection can be reused.
async fn read_response(conn: &mut Conn, is_head: bool) -> Result<(Response, bool), ReadError> {
    let mut filled = 0usize;
    let head = loop {
        let head = read_head(conn, &mut filled).await?;
        if !head.status.is_informational() {
            break head;
        }
        // 100 Continue and friends precede the real response.
        conn.rbuf.copy_within(head.len..filled, 0);
        filled -= head.len;
    };
    let (framing, keep_alive) = head.framing(is_head)?;
    let start = head.len;
    // `clean`: no bytes beyond the body (bytes we did not ask for: do not trust the connection).
    let (body, clean) = match framing {
        Framing::Empty => (Bytes::new(), true),
        Framing::Length(n) => {
            while filled < start + n {
                fill(conn, &mut filled, start + n + 4096).await?;
            }
            (Bytes::copy_from_slice(&conn.rbuf[start..start + n]), filled == start + n)
        }
        Framing::UntilClose => {
            loop {
                match fill(conn, &mut filled, start + MAX_BODY).await {
                    Ok(()) => {}
                    Err(ReadError::Closed { .. }) => break,
                    Err(e) => return Err(e),
                }
            }
            (Bytes::copy_from_slice(&conn.rbuf[start..filled]), true)
        }
        Framing::Chunked => read_chunked(conn, &mut filled, start).await?,
    };
    // Keep the buffer from staying huge after one large response.
    if conn.rbuf.len() > 64 * 1024 {
        conn.rbuf.truncate(8192);
        conn.rbuf.shrink_to(8192);
    }
    Ok((Response { status: head.status, headers: head.headers, body }, keep_alive && clean))
}

/// Reads until `rbuf[..filled]` starts with a complete response head, and parses it.
async fn read_head(conn: &mut Conn, filled: &mut usize) -> Result<Head, ReadError> {
    loop {
        if *filled > 0 {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut headers);
            match r.parse(&conn.rbuf[..*filled]) {
                Ok(httparse::Status::Complete(len)) => {
                    let mut map = HeaderMap::with_capacity(r.headers.len());
                    for h in r.headers.iter() {
                        let name = HeaderName::from_bytes(h.name.as_bytes())
                            .map_err(|_| ReadError::Invalid(format!("bad header name {:?}", h.name)))?;
                        let value =
                            HeaderValue::from_bytes(h.value).map_err(|_| ReadError::Invalid(format!("bad value of header {}", h.name)))?;
                        map.append(name, value);
                    }
                    let code = r.code.unwrap_or(0);
                    let status = StatusCode::from_u16(code).map_err(|_| ReadError::Invalid(format!("bad status {code}")))?;
                    return Ok(Head { status, version: r.version.unwrap_or(1), len, headers: map });
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(ReadError::Invalid(format!("bad response head: {e}"))),
            }
        }
        fill(conn, filled, MAX_HEAD).await?;
    }
}

/// Reads a chunked body starting at `rbuf[pos]`, through the last chunk and
/// its trailers; returns the body and whether nothing followed it.
async fn read_chunked(conn: &mut Conn, filled: &mut usize, mut pos: usize) -> Result<(Bytes, bool), ReadError> {
    let mut body = Vec::new();
    loop {
        match httparse::parse_chunk_size(&conn.rbuf[pos..*filled]) {
            Ok(httparse::Status::Complete((used, size))) => {
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                if size > MAX_BODY || body.len() + size > MAX_BODY {
                    return Err(ReadError::Invalid("chunked body over the size limit".into()));
                }
                let data = pos + used;
                if size == 0 {
                    let clean = skip_trailers(conn, filled, data).await?;
                    return Ok((Bytes::from(body), clean));
                }
                while *filled < data + size + 2 {
                    fill(conn, filled, data + size + 2 + 4096).await?;
                }
                if &conn.rbuf[data + size..data + size + 2] != b"\r\n" {
                    return Err(ReadError::Invalid("chunk not followed by CRLF".into()));
                }
                body.extend_from_slice(&conn.rbuf[data..data + size]);
                pos = data + size + 2;
            }
            Ok(httparse::Status::Partial) => {
                let limit = *filled + 4096 + MAX_HEAD;
                fill(conn, filled, limit).await?;
            }
            Err(_) => return Err(ReadError::Invalid("bad chunk size".into())),
        }
    }
}

/// Skips the optional trailers after the last chunk, up to the empty line at
/// `rbuf[data..]`; returns whether nothing followed it.
async fn skip_trailers(conn: &mut Conn, filled: &mut usize, data: usize) -> Result<bool, ReadError> {
    loop {
        let rest = &conn.rbuf[data..*filled];
        if rest.starts_with(b"\r\n") {
            return Ok(*filled == data + 2);
        }
        if let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(*filled == data + end + 4);
        }
        let limit = *filled + MAX_HEAD;
        fill(conn, filled, limit).await?;
    }
}

async fn connect_any(addrs: &[SocketAddr], connect_timeout: Duration) -> Result<TcpStream, RequestError> {
    let mut last = String::from("no address");
    for addr in addrs {
        match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) => last = format!("connect {addr}: {e}"),
            Err(_) => last = format!("connect {addr}: no answer within {connect_timeout:?}"),
        }
    }
    Err(RequestError { class: FailureClass::Connect, message: last })
}

#[cfg(test)]
mod tests {
    //! Framing against a hand-written HTTP/1.1 responder (std threads), so
    //! each case controls the exact bytes on the wire.
    use super::*;
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Answers `GET /<case>` with canned bytes; counts connections.
    fn responder() -> (SocketAddr, Arc<AtomicU64>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let conns = Arc::new(AtomicU64::new(0));
        let c = conns.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                c.fetch_add(1, Ordering::Relaxed);
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match s.read(&mut chunk) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end + 4);
                        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                        let (reply, close): (&[u8], bool) = match path.as_str() {
                            "/chunked" => (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\n", false),
                            "/continue" => (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\nlocation: /x\r\n\r\nok", false),
                            "/until-close" => (b"HTTP/1.1 200 OK\r\n\r\nall of it", true),
                            "/close-after" => (b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nbye", true),
                            "/no-content" => (b"HTTP/1.1 204 No Content\r\n\r\n", false),
                            "/garbage" => (b"SMTP ready\r\n\r\n", true),
                            _ => (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", false),
                        };
                        if s.write_all(reply).is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        (addr, conns)
    }

    async fn client(addr: SocketAddr) -> Client {
        let t = crate::config::Target {
            url: format!("http://{addr}"),
            host: "127.0.0.1".into(),
            port: addr.port(),
            authority: addr.to_string(),
            base_path: String::new(),
        };
        Client::resolve(&[("t".into(), t)], &[], Duration::from_secs(5), Duration::from_secs(1)).await.unwrap()
    }

    async fn get(c: &Client, path: &str) -> Result<Response, RequestError> {
        c.send(0, RequestSpec { method: Method::GET, path, headers: vec![], body: None }).await
    }

    #[tokio::test]
    async fn frames_bodies_every_way_and_reuses_connections() {
        let (addr, conns) = responder();
        let c = client(addr).await;
        let r = get(&c, "/chunked").await.unwrap();
        assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"hello, world"[..]));
        let r = get(&c, "/continue").await.unwrap();
        assert_eq!((r.status.as_u16(), &r.body[..]), (201, &b"ok"[..]));
        assert_eq!(r.headers.get("location").unwrap(), "/x");
        let r = get(&c, "/no-content").await.unwrap();
        assert_eq!((r.status.as_u16(), r.body.len()), (204, 0));
        let r = get(&c, "/plain").await.unwrap();
        assert_eq!(&r.body[..], b"ok");
        assert_eq!(conns.load(Ordering::Relaxed), 1, "keep-alive: one connection for four requests");

        let r = get(&c, "/until-close").await.unwrap();
        assert_eq!(&r.body[..], b"all of it");
        let r = get(&c, "/plain").await.unwrap();
        assert_eq!(&r.body[..], b"ok");
        assert_eq!(conns.load(Ordering::Relaxed), 2, "a body read to EOF retires the connection");
    }

    #[tokio::test]
    async fn a_connection_closed_while_idle_is_replaced() {
        let (addr, conns) = responder();
        let c = client(addr).await;
        // The server closes after answering, without saying so in a header.
        assert_eq!(&get(&c, "/close-after").await.unwrap().body[..], b"bye");
        // Whether the FIN is seen before reuse (stale check) or after the
        // write (retry of an idempotent request), the next request succeeds.
        assert_eq!(&get(&c, "/plain").await.unwrap().body[..], b"ok");
        assert_eq!(conns.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn garbage_and_timeouts_are_classified() {
        let (addr, _) = responder();
        let c = client(addr).await;
        let e = get(&c, "/garbage").await.unwrap_err();
        assert_eq!(e.class, FailureClass::Protocol, "{e:?}");
        assert!(e.message.contains("invalid response"), "{}", e.message);

        // A server that accepts and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let t = crate::config::Target {
            url: String::new(),
            host: "127.0.0.1".into(),
            port: silent.local_addr().unwrap().port(),
            authority: "x".into(),
            base_path: String::new(),
        };
        let c = Client::resolve(&[("s".into(), t)], &[], Duration::from_millis(200), Duration::from_secs(1)).await.unwrap();
        let e = get(&c, "/").await.unwrap_err();
        assert_eq!(e.class, FailureClass::Timeout, "{e:?}");
        drop(silent);
    }

    #[test]
    fn encodes_one_request_with_host_length_and_prefix() {
        let o = Origin {
            name: "n".into(),
            url: String::new(),
            addrs: vec![],
            authority: "svc:8080".into(),
            base_path: "/api".into(),
            idle: Mutex::new(vec![]),
        };
        let mut w = Vec::new();
        let spec = RequestSpec {
            method: Method::POST,
            path: "/orders",
            headers: vec![(HeaderName::from_static("idempotency-key"), HeaderValue::from_static("k1"))],
            body: Some(Bytes::from_static(b"{}")),
        };
        encode(&mut w, &o, &spec);
        assert_eq!(
            String::from_utf8(w).unwrap(),
            "POST /api/orders HTTP/1.1\r\nhost: svc:8080\r\nidempotency-key: k1\r\ncontent-length: 2\r\n\r\n{}"
        );
    }
}
