//! The HTTP/1.1 server of the management API ([`crate::api`]) and the
//! Prometheus endpoint ([`crate::metrics`]): axum on hyper 1, with
//! tower-http's timeouts, on a small tokio runtime of its own (see
//! [`HttpServer`] for every limit and its answer). A panicking handler
//! becomes a 500.
//!
//! This module is the line between the routes and the server: handlers see
//! a [`Req`] and answer a [`Reply`] or an [`Answer`], nothing else of HTTP.
//! They are plain blocking functions (the dataplane's calls block, bounded),
//! run on the runtime's blocking threads; a streamed answer's producer
//! writes into a [`std::io::Write`] whose chunks hyper sends as the client
//! takes them.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use http_body::Frame;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use serde_json::json;
use tokio::runtime::Runtime;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

/// Largest request body accepted (413 beyond).
pub const MAX_BODY: usize = 64 * 1024;

/// Why the API (or the metrics endpoint) could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A non-loopback address was asked for without a bearer token.
    #[error(
        "refusing to serve the management API on {addr} without a token: \
         set api-token (or bind a loopback address such as 127.0.0.1:8728)"
    )]
    TokenRequired { addr: SocketAddr },
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
}

/// One answer: status, content type and body.
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub(crate) fn json(status: u16, v: &impl serde::Serialize) -> Reply {
        match serde_json::to_vec(v) {
            Ok(body) => Reply {
                status,
                content_type: "application/json",
                body,
                headers: Vec::new(),
            },
            Err(e) => Reply::error(500, format!("cannot encode the answer: {e}"), String::new()),
        }
    }

    pub(crate) fn empty(status: u16) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// RouterOS REST's error shape: `{"error": 404, "message": "Not
    /// Found", "detail": "..."}`: `message` is the status text, `detail`
    /// the specifics (`message`, then `detail` if any, e.g. the known
    /// properties).
    pub(crate) fn error(status: u16, message: String, detail: String) -> Reply {
        let detail = if detail.is_empty() {
            message
        } else {
            format!("{message} ({detail})")
        };
        let body = json!({ "error": status, "message": reason_phrase(status), "detail": detail });
        Reply {
            status,
            content_type: "application/json",
            body: body.to_string().into_bytes(),
            headers: Vec::new(),
        }
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

/// Writes a streamed body (see [`Answer::Stream`]).
pub(crate) type Produce = Box<dyn FnOnce(&mut dyn Write) -> Result<(), StreamError> + Send>;

/// What a handler answers.
pub(crate) enum Answer {
    /// A fixed-length answer (`Content-Length`).
    Fixed(Reply),
    /// A 200 whose body is written as it is produced, in chunks of at most
    /// [`STREAM_CHUNK`] bytes (`Transfer-Encoding: chunked`), so its size
    /// costs no memory. The head goes out with the first chunk: a producer
    /// that fails before then still answers with its error [`Reply`]; one
    /// that fails later ends the transfer without its last chunk.
    Stream {
        content_type: &'static str,
        produce: Produce,
    },
    /// A 200 streamed as [`Answer::Stream`], for a body that never ends on
    /// its own (`connection listen`): every `flush` sends what was written
    /// as a chunk at once, and the connection is exempt from
    /// [`ANSWER_DEADLINE`]. The per-chunk timeout stays ([`READ_TIMEOUT`]:
    /// a reader that takes nothing for that long is dropped), so the
    /// producer should write something now and then to learn that its
    /// client is gone. It ends when the producer returns or the server stops.
    Live {
        content_type: &'static str,
        produce: Produce,
    },
}

impl From<Reply> for Answer {
    fn from(r: Reply) -> Answer {
        Answer::Fixed(r)
    }
}

/// Why a streamed body stopped before its end.
pub(crate) enum StreamError {
    /// The producer failed: this is the answer if nothing was sent yet.
    Failed(Reply),
    /// The client is gone or too slow.
    Io(io::Error),
}

impl From<io::Error> for StreamError {
    fn from(e: io::Error) -> StreamError {
        StreamError::Io(e)
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        204 => "No Content",
        200 => "OK",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        505 => "HTTP Version Not Supported",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// What a route handler sees of a request.
pub(crate) struct Req<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub authorization: Option<&'a str>,
    /// Declared body length, if any.
    pub body_length: Option<usize>,
    pub body: &'a mut dyn Read,
}

pub(crate) type Handler = dyn Fn(&mut Req<'_>) -> Reply + Send + Sync;
/// A handler that may stream its answer.
pub(crate) type AnswerHandler = dyn Fn(&mut Req<'_>) -> Answer + Send + Sync;

/// How long a client may take to send its request head, and how long a
/// streamed answer may wait for the client to take its next chunk.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// From the accepted connection to the answer's head: reading the body and
/// running the handler fit in it, or the answer is a 408.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// The whole connection, a streamed answer's last byte included: a client
/// that reads slowly (but never quite stops) is cut off here.
pub(crate) const ANSWER_DEADLINE: Duration = Duration::from_secs(60);
/// Largest request line plus headers (hyper's read buffer; 431 beyond).
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Bytes of a streamed body gathered before they leave as one chunk.
pub(crate) const STREAM_CHUNK: usize = 64 * 1024;
/// Connections open at once, all clients together; beyond, a 503.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// Connections open at once from one client address; beyond, a 503.
pub(crate) const MAX_PER_CLIENT: usize = 8;
/// Streamed answers (listings) produced at once, each on a blocking thread
/// of its own; beyond, a 503. Twice [`MAX_PER_CLIENT`]: one client cannot
/// take them all.
pub(crate) const MAX_STREAMS: usize = 16;

/// An HTTP/1.1 server for the routes: axum (hyper 1) on a small tokio
/// runtime of its own, one request per connection (`Connection: close`).
///
/// Limits, each with its answer: a request head of at most [`MAX_HEAD`]
/// bytes (431) sent within [`READ_TIMEOUT`] (closed), a body of at most
/// [`MAX_BODY`] bytes (413, from `Content-Length` before anything is read;
/// chunked request bodies are refused with 411) whose reads make progress
/// within [`READ_TIMEOUT`] (tower-http's body timeout), an answer head
/// within [`REQUEST_DEADLINE`] (408, tower-http's timeout), the whole
/// connection within [`ANSWER_DEADLINE`] (closed, a streamed answer
/// without its last chunk), [`MAX_CONNECTIONS`] connections and
/// [`MAX_PER_CLIENT`] per client address (503 and closed).
///
/// The runtime (at most two threads; `threads` blocking handlers, which
/// call the dataplane, and up to [`MAX_STREAMS`] producers of streamed
/// answers on blocking threads of their own) is started by the calling
/// thread, so its threads inherit its CPU affinity: `ctrack run` starts
/// its servers on the main (control) thread, never on a worker's core.
/// Waiting clients cost a task, not a thread: a slow or silent client
/// cannot hold the handlers. [`HttpServer::stop`] does not wait for
/// clients: it drops every connection and closes the listener.
pub(crate) struct HttpServer {
    addr: SocketAddr,
    stop: Arc<Notify>,
    runtime: Option<Runtime>,
}

/// The API's TLS (`www-ssl`-like): a certificate chain and its key, read
/// once at start. With it, the server speaks HTTPS only.
#[derive(Clone)]
pub struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
}

impl Tls {
    /// Reads a PEM certificate chain and a PEM private key; `Err` names the
    /// file and the problem.
    pub fn load(cert: &std::path::Path, key: &std::path::Path) -> Result<Tls, String> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| format!("tls-cert {}: {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!("tls-cert {}: no certificate in it", cert.display()));
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("tls-key {}: {e}", key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| format!("tls-cert and tls-key do not make a certificate: {e}"))?;
        Ok(Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }
}

/// What every connection's service shares.
struct Shared {
    handler: Arc<AnswerHandler>,
    /// Handlers running at once (`threads`); a request waits for one.
    handlers: Arc<Semaphore>,
    /// Streamed answers being produced at once ([`MAX_STREAMS`]); beyond, a
    /// 503. Their producers have blocking threads of their own, so slow
    /// readers of listings never hold the handlers.
    streams: Arc<Semaphore>,
}

impl HttpServer {
    /// Serves `handler`'s fixed-length answers.
    pub(crate) fn start(
        addr: SocketAddr,
        name: &str,
        threads: usize,
        handler: Arc<Handler>,
    ) -> Result<HttpServer, ApiError> {
        let answer: Arc<AnswerHandler> = Arc::new(move |req: &mut Req<'_>| handler(req).into());
        HttpServer::start_answering(addr, name, threads, answer)
    }

    /// Serves `handler`'s answers, streamed ones included. `threads` is the
    /// number of blocking handlers that may run at once (the runtime itself
    /// has at most two threads).
    pub(crate) fn start_answering(
        addr: SocketAddr,
        name: &str,
        threads: usize,
        handler: Arc<AnswerHandler>,
    ) -> Result<HttpServer, ApiError> {
        HttpServer::start_tls(addr, name, threads, handler, None)
    }

    /// [`HttpServer::start_answering`], over TLS when `tls` is given.
    pub(crate) fn start_tls(
        addr: SocketAddr,
        name: &str,
        threads: usize,
        handler: Arc<AnswerHandler>,
        tls: Option<Tls>,
    ) -> Result<HttpServer, ApiError> {
        let bind_err = |e: std::io::Error| ApiError::Bind {
            addr,
            reason: e.to_string(),
        };
        let listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
        let local = listener.local_addr().map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.clamp(1, 2))
            .max_blocking_threads(threads.max(1) + MAX_STREAMS)
            .thread_name(name)
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| ApiError::Bind {
                addr,
                reason: format!("cannot start the server's runtime: {e}"),
            })?;
        let listener = {
            let _in = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(bind_err)?
        };
        let shared = Arc::new(Shared {
            handler,
            handlers: Arc::new(Semaphore::new(threads.max(1))),
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
        });
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(shared)
            .layer(RequestBodyTimeoutLayer::new(READ_TIMEOUT))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                REQUEST_DEADLINE,
            ));
        let stop = Arc::new(Notify::new());
        runtime.spawn(accept_loop(listener, app, tls, Arc::clone(&stop)));
        Ok(HttpServer {
            addr: local,
            stop,
            runtime: Some(runtime),
        })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes the listener and drops every connection, without waiting for
    /// clients (a handler still inside the dataplane is given a second to
    /// return). Idempotent.
    pub(crate) fn stop(&mut self) {
        self.stop.notify_one();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Open connections, in all and per client address.
#[derive(Default)]
struct Open {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// One open connection's place in [`Open`], given back on drop.
struct Slot {
    open: Arc<Mutex<Open>>,
    ip: IpAddr,
}

impl Slot {
    /// A place for a connection from `ip`, or `None` over a limit.
    fn take(open: &Arc<Mutex<Open>>, ip: IpAddr) -> Option<Slot> {
        let mut o = open.lock();
        let mine = o.per_client.get(&ip).copied().unwrap_or(0);
        if o.total >= MAX_CONNECTIONS || mine >= MAX_PER_CLIENT {
            return None;
        }
        o.total += 1;
        o.per_client.insert(ip, mine + 1);
        Some(Slot {
            open: Arc::clone(open),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut o = self.open.lock();
        o.total -= 1;
        if let Some(n) = o.per_client.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                o.per_client.remove(&self.ip);
            }
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    tls: Option<Tls>,
    stop: Arc<Notify>,
) {
    let open = Arc::new(Mutex::new(Open::default()));
    loop {
        let accepted = tokio::select! {
            () = stop.notified() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            // Out of descriptors and the like: back off, keep serving.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Some(slot) = Slot::take(&open, peer.ip()) else {
            // A TLS client could not read a plain answer: it is just closed.
            if tls.is_none() {
                tokio::spawn(refuse(stream));
            }
            continue;
        };
        let live = Lifted::default();
        let app = app.clone().layer(axum::Extension(live.clone()));
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            // Past the deadline the connection is dropped, whatever it was
            // doing: a streamed answer ends without its last chunk; a live
            // one ([`Answer::Live`]) goes on.
            let _ = deadline_unless_lifted(&live, async move {
                match tls {
                    None => serve(stream, app).await,
                    Some(t) => {
                        // The handshake counts against the head's timeout.
                        let shaken =
                            tokio::time::timeout(READ_TIMEOUT, t.acceptor.accept(stream)).await;
                        if let Ok(Ok(s)) = shaken {
                            serve(s, app).await;
                        }
                    }
                }
            })
            .await;
        });
    }
}

/// Set by [`answer`] when the connection's answer is an [`Answer::Live`]:
/// [`ANSWER_DEADLINE`] no longer applies to it.
#[derive(Clone, Default)]
struct Lifted(Arc<std::sync::atomic::AtomicBool>);

/// Runs `conn` to its end, or until [`ANSWER_DEADLINE`] unless `lifted` was
/// set by then (`Err` when cut off).
async fn deadline_unless_lifted(
    lifted: &Lifted,
    conn: impl std::future::Future<Output = ()>,
) -> Result<(), ()> {
    tokio::pin!(conn);
    tokio::select! {
        () = &mut conn => Ok(()),
        () = tokio::time::sleep(ANSWER_DEADLINE) => {
            if lifted.0.load(std::sync::atomic::Ordering::SeqCst) {
                conn.await;
                Ok(())
            } else {
                Err(())
            }
        }
    }
}

/// One request on one connection (plain or TLS).
async fn serve<S>(io: S, app: axum::Router)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = TowerToHyperService::new(app);
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(READ_TIMEOUT)
        .keep_alive(false)
        .title_case_headers(true)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

/// Answers a connection over a limit with a 503 and closes it.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let r = Reply::error(
        503,
        format!(
            "too many connections (at most {MAX_CONNECTIONS}, {MAX_PER_CLIENT} per client address)"
        ),
        String::new(),
    );
    let mut out = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        r.body.len()
    )
    .into_bytes();
    out.extend_from_slice(&r.body);
    let _ = tokio::time::timeout(READ_TIMEOUT, async {
        let _ = stream.write_all(&out).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

fn internal_error() -> Reply {
    Reply::error(500, "internal error".to_string(), String::new())
}

/// The one axum handler: checks what the routes cannot see (body framing
/// and size), reads the body, runs the route on a blocking thread and turns
/// its [`Answer`] into a response.
async fn answer(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if parts.headers.contains_key(header::TRANSFER_ENCODING) {
        return response(Reply::error(
            411,
            "body: Transfer-Encoding is not supported; send Content-Length".to_string(),
            String::new(),
        ));
    }
    // hyper has already refused a malformed or conflicting Content-Length.
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return response(too_large());
    }
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return response(too_large()),
        // The client went away or stalled: nobody to answer.
        Err(_) => {
            return response(Reply::error(
                400,
                "cannot read the body".to_string(),
                "body".to_string(),
            ));
        }
    };
    let lifted = parts.extensions.get::<Lifted>().cloned();
    let is_head = parts.method == Method::HEAD;
    let method = if is_head {
        "GET".to_string()
    } else {
        parts.method.as_str().to_string()
    };
    let url = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let handler = Arc::clone(&shared.handler);
    // Handlers are short (the dataplane's calls are bounded): wait for one.
    let Ok(permit) = Arc::clone(&shared.handlers).acquire_owned().await else {
        return response(internal_error());
    };
    let ran = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut body_reader: &[u8] = &bytes;
        let mut req = Req {
            method: &method,
            url: &url,
            authorization: authorization.as_deref(),
            body_length: Some(bytes.len()),
            body: &mut body_reader,
        };
        catch_unwind(AssertUnwindSafe(|| handler(&mut req)))
            .unwrap_or_else(|_| internal_error().into())
    })
    .await;
    match ran {
        Ok(Answer::Fixed(r)) => response(r),
        Ok(Answer::Stream {
            content_type,
            produce,
        }) => match Arc::clone(&shared.streams).try_acquire_owned() {
            Ok(permit) => stream(content_type, produce, is_head, false, permit).await,
            Err(_) => response(Reply::error(
                503,
                format!("too many listings at once (at most {MAX_STREAMS}); retry"),
                String::new(),
            )),
        },
        Ok(Answer::Live {
            content_type,
            produce,
        }) => match Arc::clone(&shared.streams).try_acquire_owned() {
            Ok(permit) => {
                if let Some(l) = lifted {
                    l.0.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                stream(content_type, produce, is_head, true, permit).await
            }
            Err(_) => response(Reply::error(
                503,
                format!("too many streams at once (at most {MAX_STREAMS}); retry"),
                String::new(),
            )),
        },
        Err(_) => response(internal_error()),
    }
}

/// A fixed-length answer.
fn response(r: Reply) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, r.content_type);
    for (k, v) in &r.headers {
        b = b.header(*k, v.as_str());
    }
    // hyper sends no body for a HEAD, but the length the body would have.
    let body = if status == StatusCode::NO_CONTENT {
        Body::empty()
    } else {
        Body::from(r.body)
    };
    b.body(body).unwrap_or_else(|_| {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

/// What a streamed answer's producer says, in order: chunks, then its end.
enum Piece {
    Chunk(Bytes),
    /// The producer is done: the body is complete.
    End,
    /// The producer failed.
    Failed(Reply),
}

/// Sends an [`Answer::Stream`]: runs `produce` on a blocking thread into a
/// [`ChunkWriter`] and waits for its first piece. A failure before the
/// first chunk answers with the producer's error reply, as a fixed-length
/// answer would. After it the status is sent: a later failure ends the
/// transfer without its last (empty) chunk, so the client sees a truncated
/// body rather than a shorter valid one, and the failure is logged, once.
/// A HEAD stops producing at its first chunk.
async fn stream(
    content_type: &'static str,
    produce: Produce,
    head_only: bool,
    live: bool,
    permit: OwnedSemaphorePermit,
) -> Response {
    let (tx, mut rx) = mpsc::channel::<Piece>(1);
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut w = ChunkWriter {
            tx,
            handle,
            buf: BytesMut::with_capacity(STREAM_CHUNK),
            head_only,
            live,
            sent: 0,
        };
        let produced = catch_unwind(AssertUnwindSafe(|| produce(&mut w)))
            .unwrap_or_else(|_| Err(StreamError::Failed(internal_error())));
        let last = match produced {
            Ok(()) => w.send_chunk().map(|()| Piece::End),
            Err(StreamError::Failed(r)) => Ok(Piece::Failed(r)),
            Err(StreamError::Io(e)) => Err(e),
        };
        if let Ok(p) = last {
            let _ = w.send(p);
        }
    });
    let first = match rx.recv().await {
        Some(Piece::Failed(r)) => return response(r),
        Some(p) => p,
        None => return response(internal_error()),
    };
    if head_only {
        drop(rx);
        // A body of unknown length, as the GET's: no Content-Length.
        let nothing = ChannelBody {
            first: Some(Piece::End),
            rx: mpsc::channel(1).1,
        };
        return Response::builder()
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::new(nothing))
            .unwrap_or_else(|_| Response::new(Body::empty()));
    }
    let body = ChannelBody {
        first: Some(first),
        rx,
    };
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::new(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// The body of an [`Answer::Stream`] on its way out, on the producer's
/// (blocking) thread: bytes gather in a buffer of [`STREAM_CHUNK`] bytes
/// and leave as one HTTP chunk when it is full (`flush` does not force a
/// short chunk, but in an [`Answer::Live`]). A client that takes no chunk for [`READ_TIMEOUT`], or is
/// gone, stops the producer with an I/O error.
struct ChunkWriter {
    tx: mpsc::Sender<Piece>,
    handle: tokio::runtime::Handle,
    buf: BytesMut,
    /// HEAD: stop the producer at its first chunk.
    head_only: bool,
    /// [`Answer::Live`]: `flush` sends what is buffered as a chunk.
    live: bool,
    /// Body bytes sent so far.
    sent: u64,
}

impl ChunkWriter {
    fn send(&mut self, p: Piece) -> io::Result<()> {
        let sent = self
            .handle
            .block_on(tokio::time::timeout(READ_TIMEOUT, self.tx.send(p)));
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the client is gone",
            )),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took no data for the read timeout",
            )),
        }
    }

    fn send_chunk(&mut self) -> io::Result<()> {
        // An empty chunk would end the body.
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.sent += chunk.len() as u64;
        self.buf.reserve(STREAM_CHUNK);
        self.send(Piece::Chunk(chunk))?;
        if self.head_only {
            return Err(io::Error::other("HEAD: no body to send"));
        }
        Ok(())
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() == STREAM_CHUNK {
            self.send_chunk()?;
        }
        let n = data.len().min(STREAM_CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.live {
            self.send_chunk()?;
        }
        Ok(())
    }
}

/// A streamed answer's body as hyper polls it.
struct ChannelBody {
    first: Option<Piece>,
    rx: mpsc::Receiver<Piece>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let piece = match self.first.take() {
            Some(p) => Some(p),
            None => match self.rx.poll_recv(cx) {
                Poll::Ready(p) => p,
                Poll::Pending => return Poll::Pending,
            },
        };
        Poll::Ready(match piece {
            Some(Piece::Chunk(b)) => Some(Ok(Frame::data(b))),
            Some(Piece::End) => None,
            Some(Piece::Failed(r)) => {
                tracing::warn!(
                    "api: a streamed answer failed after its head was sent \
                     (connection closed without the last chunk): {}",
                    String::from_utf8_lossy(&r.body)
                );
                Some(Err(io::Error::other("streamed answer truncated")))
            }
            // The producer stopped on an I/O error of its own (the client).
            None => Some(Err(io::Error::other("streamed answer stopped"))),
        })
    }
}

pub(crate) fn too_large() -> Reply {
    Reply::error(
        413,
        format!("request body larger than {MAX_BODY} bytes"),
        String::new(),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An answer's head (up to the blank line) and body.
    pub(crate) fn split_answer(raw: &[u8]) -> (String, &[u8]) {
        let end = find(raw, b"\r\n\r\n").expect("a complete head") + 4;
        (
            String::from_utf8_lossy(&raw[..end]).to_string(),
            &raw[end..],
        )
    }

    /// A chunked body decoded: the payload, whether the last (empty) chunk
    /// ended it, and each chunk's size. Panics on a malformed chunk.
    pub(crate) fn dechunk(mut b: &[u8]) -> (Vec<u8>, bool, Vec<usize>) {
        let (mut payload, mut sizes) = (Vec::new(), Vec::new());
        while !b.is_empty() {
            let line = find(b, b"\r\n").expect("a chunk-size line");
            let size = usize::from_str_radix(std::str::from_utf8(&b[..line]).unwrap(), 16).unwrap();
            b = &b[line + 2..];
            if size == 0 {
                assert_eq!(b, b"\r\n", "nothing after the last chunk");
                return (payload, true, sizes);
            }
            assert!(b.len() >= size + 2, "a whole chunk");
            payload.extend_from_slice(&b[..size]);
            assert_eq!(&b[size..size + 2], b"\r\n");
            b = &b[size + 2..];
            sizes.push(size);
        }
        (payload, false, sizes)
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    /// What a streamed answer sent: status, content type, each chunk, and
    /// whether the body ended properly (its last chunk) or failed.
    struct Sent {
        status: u16,
        content_type: String,
        chunks: Vec<Bytes>,
        ended: bool,
    }

    /// Runs `produce` as a streamed answer and takes its body as hyper would.
    fn streamed(produce: Produce, head_only: bool) -> Sent {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
            let resp = stream("text/plain", produce, head_only, false, permit).await;
            let status = resp.status().as_u16();
            let content_type = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let mut body = resp.into_body();
            let mut chunks = Vec::new();
            let ended = loop {
                match body.frame().await {
                    None => break true,
                    Some(Ok(f)) => chunks.push(f.into_data().unwrap()),
                    Some(Err(_)) => break false,
                }
            };
            Sent {
                status,
                content_type,
                chunks,
                ended,
            }
        })
    }

    fn sizes(s: &Sent) -> Vec<usize> {
        s.chunks.iter().map(Bytes::len).collect()
    }

    #[test]
    fn a_stream_goes_out_in_full_chunks() {
        let s = streamed(
            Box::new(|out| {
                for i in 0..3000u32 {
                    out.write_all(&[b'a' + (i % 26) as u8; 100])?;
                }
                Ok(())
            }),
            false,
        );
        assert_eq!((s.status, s.content_type.as_str()), (200, "text/plain"));
        assert!(s.ended);
        assert_eq!(
            sizes(&s),
            [
                STREAM_CHUNK,
                STREAM_CHUNK,
                STREAM_CHUNK,
                STREAM_CHUNK,
                37_856
            ]
        );
        let payload: Vec<u8> = s.chunks.concat();
        assert_eq!(payload.len(), 300_000);
        assert_eq!(&payload[..3], b"aaa");

        // One big write leaves in full chunks too.
        let s = streamed(
            Box::new(|out| {
                out.write_all(&vec![b'x'; 5 * STREAM_CHUNK + 1])?;
                Ok(())
            }),
            false,
        );
        assert!(s.ended);
        assert_eq!(
            sizes(&s),
            [STREAM_CHUNK; 5]
                .iter()
                .copied()
                .chain([1])
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_stream_that_fails_answers_the_error_or_stops_short() {
        let fail = || StreamError::Failed(Reply::error(503, "gone".to_string(), String::new()));
        // Before the first chunk: the error, as a fixed-length answer.
        let s = streamed(
            Box::new(move |out| {
                out.write_all(b"[1,2")?;
                Err(fail())
            }),
            false,
        );
        assert_eq!(s.status, 503);
        let v: serde_json::Value = serde_json::from_slice(&s.chunks.concat()).unwrap();
        assert_eq!(v["message"], "Service Unavailable");
        assert_eq!(v["detail"], "gone");

        // After it: what was sent, and no last chunk.
        let s = streamed(
            Box::new(move |out| {
                out.write_all(&vec![b'x'; STREAM_CHUNK + 10])?;
                Err(fail())
            }),
            false,
        );
        assert_eq!(s.status, 200);
        assert!(!s.ended);
        assert_eq!(sizes(&s), [STREAM_CHUNK]);

        // A panic is a 500 before the first chunk.
        let s = streamed(Box::new(|_| panic!("bug")), false);
        assert_eq!(s.status, 500);

        // HEAD: the head, and the producer stopped at its first chunk.
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let s = streamed(
            Box::new(move |out| {
                let mut written = 0;
                let r = (|| {
                    for _ in 0..1000 {
                        out.write_all(&[b'x'; 1024])?;
                        written += 1;
                    }
                    Ok::<(), io::Error>(())
                })();
                done_tx.send((written, r.is_err())).unwrap();
                Ok(r?)
            }),
            true,
        );
        assert_eq!(s.status, 200);
        assert!(s.chunks.is_empty());
        let (written, stopped) = done_rx.recv().unwrap();
        assert!(stopped, "HEAD should have stopped the producer");
        assert!(written <= 2 * STREAM_CHUNK / 1024, "{written} KiB written");
    }
}
