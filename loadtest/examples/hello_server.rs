//! A trivial HTTP/1.1 server for the `vs-wrk` benchmark: `GET /hello` answers
//! `200 ok` on a single-threaded runtime, so it can be pinned to one core.
//!
//! Usage: `hello_server [PORT]` (default 0 = any free port); prints
//! `listening on 127.0.0.1:PORT` once it accepts connections.
#![forbid(unsafe_code)]

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

fn main() -> anyhow::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p.parse().map_err(|_| anyhow::anyhow!("PORT `{p}` is not a port number"))?,
        None => 0,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("listening on {}", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    })
}
