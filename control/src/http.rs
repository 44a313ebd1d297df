//! A minimal HTTP/1.1 server on std, for the management API
//! ([`crate::api`]) and the Prometheus endpoint ([`crate::metrics`]): a small
//! fixed pool of threads, one request per connection, read and write
//! timeouts and a whole-request deadline, a 16 KiB head limit and a
//! [`MAX_BODY`] body limit checked from `Content-Length` before anything is
//! read. A panicking handler becomes a 500. A slow client holds one handler
//! for at most the deadline.
//!
//! This module is the line between the routes and the server: handlers see
//! a [`Req`] and answer a [`Reply`] or an [`Answer`], nothing else of HTTP.
//! The server itself is to be replaced by a well-kept crate; only this
//! module changes then.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;

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

    /// RouterOS REST's error shape: `{"error": 400, "message": ..., "detail": ...}`.
    pub(crate) fn error(status: u16, message: String, detail: String) -> Reply {
        let detail = if detail.is_empty() {
            reason_phrase(status).to_string()
        } else {
            detail
        };
        let body = json!({ "error": status, "message": message, "detail": detail });
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

/// Per-read socket timeout.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole-request deadline: a slow client holds a handler at most this long.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// Largest request line plus headers.
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Bytes of a streamed body gathered before they leave as one chunk.
pub(crate) const STREAM_CHUNK: usize = 64 * 1024;

/// A minimal HTTP/1.1 server on std: a fixed pool of threads, each accepting
/// and answering one request per connection (`Connection: close`), with read
/// and write timeouts, a head limit and a body limit. (`tiny_http` 0.12 was
/// tried and dropped: it starts a thread per connection, has no read
/// timeouts, and aborts the process on a request that declares a huge
/// `Content-Length` and is answered without reading it.)
pub(crate) struct HttpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
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

    /// Serves `handler`'s answers, streamed ones included.
    pub(crate) fn start_answering(
        addr: SocketAddr,
        name: &str,
        threads: usize,
        handler: Arc<AnswerHandler>,
    ) -> Result<HttpServer, ApiError> {
        let bind_err = |e: std::io::Error| ApiError::Bind {
            addr,
            reason: e.to_string(),
        };
        let listener = TcpListener::bind(addr).map_err(bind_err)?;
        let local = listener.local_addr().map_err(bind_err)?;
        let listener = Arc::new(listener);
        let stop = Arc::new(AtomicBool::new(false));
        let mut server = HttpServer {
            addr: local,
            stop: Arc::clone(&stop),
            threads: Vec::new(),
        };
        for i in 0..threads.max(1) {
            let listener = Arc::clone(&listener);
            let flag = Arc::clone(&stop);
            let handler = Arc::clone(&handler);
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || serve(&listener, &flag, &*handler));
            match spawned {
                Ok(h) => server.threads.push(h),
                Err(e) => {
                    server.stop();
                    return Err(ApiError::Bind {
                        addr,
                        reason: format!("cannot start a thread: {e}"),
                    });
                }
            }
        }
        Ok(server)
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the handler threads and closes the listener. Idempotent.
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake every thread blocked in accept with a connection of its own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
            });
        }
        for _ in 0..self.threads.len() {
            let _ = TcpStream::connect_timeout(&wake, Duration::from_millis(200));
        }
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(listener: &TcpListener, stop: &AtomicBool, handler: &AnswerHandler) {
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match accepted {
            Ok((stream, _)) => {
                // A panic in our code becomes a dropped connection, never a
                // dead thread.
                let _ = catch_unwind(AssertUnwindSafe(|| connection(stream, handler)));
            }
            // Out of descriptors and the like: back off, keep serving.
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Why a request could not be read.
enum ReadFail {
    /// Answer with this, then close.
    Reply(Reply),
    /// The client is gone or too slow: just close.
    Drop,
}

/// Reads one request, answers it, closes.
fn connection(mut stream: TcpStream, handler: &AnswerHandler) {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let (answer, head_only) = match read_request(&mut stream, deadline) {
        Ok((head, body)) => {
            let is_head = head.method == "HEAD";
            let mut body_reader: &[u8] = &body;
            let mut req = Req {
                method: if is_head { "GET" } else { &head.method },
                url: &head.target,
                authorization: head.authorization.as_deref(),
                body_length: Some(body.len()),
                body: &mut body_reader,
            };
            let answer = catch_unwind(AssertUnwindSafe(|| handler(&mut req)))
                .unwrap_or_else(|_| internal_error().into());
            (answer, is_head)
        }
        Err(ReadFail::Reply(r)) => (Answer::Fixed(r), false),
        Err(ReadFail::Drop) => return,
    };
    // A truncated stream closes the same way: the client then sees the end
    // of the connection where the last chunk should have been.
    let _ = match answer {
        Answer::Fixed(r) => write_reply(&mut stream, &r, head_only),
        Answer::Stream {
            content_type,
            produce,
        } => write_stream(&mut stream, content_type, produce, head_only),
    };
    // Let the client read the answer before the close: drain a little of
    // whatever it still sends (an unread body), bounded in bytes and time.
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut sink = [0u8; 8192];
    let mut drained = 0;
    while drained < 256 * 1024 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

struct Head {
    method: String,
    target: String,
    authorization: Option<String>,
}

fn read_request(stream: &mut TcpStream, deadline: Instant) -> Result<(Head, Vec<u8>), ReadFail> {
    let bad = |m: &str| ReadFail::Reply(Reply::error(400, m.to_string(), "request".to_string()));
    // Read until the blank line, at most MAX_HEAD bytes.
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let end = find(&buf, b"\r\n\r\n");
        if end.unwrap_or(buf.len()) > MAX_HEAD {
            return Err(ReadFail::Reply(Reply::error(
                431,
                format!("request head larger than {MAX_HEAD} bytes"),
                String::new(),
            )));
        }
        if let Some(p) = end {
            break p;
        }
        if Instant::now() > deadline {
            return Err(ReadFail::Drop);
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Err(ReadFail::Drop),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head =
        std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("request head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("malformed request line"));
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(ReadFail::Reply(Reply::error(
            505,
            format!("HTTP version {version:?} not supported"),
            String::new(),
        )));
    }
    if method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !target.starts_with('/')
    {
        return Err(bad("malformed request line"));
    }
    let mut content_length: Option<usize> = None;
    let mut authorization = None;
    let mut expect_continue = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad("malformed header line"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value
                .parse()
                .map_err(|_| bad(&format!("bad Content-Length {value:?}")))?;
            if content_length.is_some_and(|c| c as u64 != n) {
                return Err(bad("conflicting Content-Length headers"));
            }
            if n > MAX_BODY as u64 {
                return Err(ReadFail::Reply(too_large()));
            }
            content_length = Some(n as usize);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(ReadFail::Reply(Reply::error(
                411,
                "body: Transfer-Encoding is not supported; send Content-Length".to_string(),
                String::new(),
            )));
        } else if name.eq_ignore_ascii_case("authorization") {
            authorization = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("expect") && value.eq_ignore_ascii_case("100-continue")
        {
            expect_continue = true;
        }
    }
    let want = content_length.unwrap_or(0);
    let (method, target) = (method.to_string(), target.to_string());
    let mut body = buf.split_off(head_end + 4);
    if body.len() > want {
        // Pipelined bytes after the body: one request per connection.
        body.truncate(want);
    }
    if expect_continue && body.len() < want {
        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    while body.len() < want {
        if Instant::now() > deadline {
            return Err(ReadFail::Drop);
        }
        let n = (want - body.len()).min(chunk.len());
        match stream.read(&mut chunk[..n]) {
            Ok(0) | Err(_) => return Err(ReadFail::Drop),
            Ok(k) => body.extend_from_slice(&chunk[..k]),
        }
    }
    Ok((
        Head {
            method,
            target,
            authorization,
        },
        body,
    ))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn internal_error() -> Reply {
    Reply::error(500, "internal error".to_string(), String::new())
}

fn write_reply<W: Write + ?Sized>(stream: &mut W, r: &Reply, head_only: bool) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        r.status,
        reason_phrase(r.status),
        r.content_type,
        r.body.len()
    );
    for (k, v) in &r.headers {
        // Our own header values; never carry a line break.
        let v: String = v.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if !head_only && r.status != 204 {
        stream.write_all(&r.body)?;
    }
    stream.flush()
}

/// Sends an [`Answer::Stream`]: runs `produce` into a [`ChunkedBody`]. A
/// failure before the first chunk left answers with the producer's error
/// reply, as a fixed-length answer would. After it, the status is sent: the
/// transfer stops without its last (empty) chunk, so the client sees a
/// truncated body rather than a shorter valid one, and the failure is
/// logged, once. A HEAD stops producing as soon as its head is known.
fn write_stream<W: Write>(
    stream: &mut W,
    content_type: &str,
    produce: Produce,
    head_only: bool,
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 {}\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n",
        reason_phrase(200)
    );
    let mut body = ChunkedBody {
        out: stream,
        head,
        head_only,
        buf: Vec::with_capacity(STREAM_CHUNK),
        committed: false,
        sent: 0,
    };
    let produced = catch_unwind(AssertUnwindSafe(|| produce(&mut body)))
        .unwrap_or_else(|_| Err(StreamError::Failed(internal_error())));
    match produced {
        Ok(()) => body.finish(),
        Err(_) if head_only && body.committed => Ok(()),
        Err(StreamError::Failed(r)) if !body.committed => write_reply(body.out, &r, head_only),
        Err(StreamError::Failed(r)) => {
            tracing::warn!(
                "api: a streamed answer failed after {} bytes of its body were sent \
                 (connection closed without the last chunk): {}",
                body.sent,
                String::from_utf8_lossy(&r.body)
            );
            Err(io::Error::other("streamed answer truncated"))
        }
        Err(StreamError::Io(e)) => Err(e),
    }
}

/// The body of an [`Answer::Stream`] on its way out. Bytes gather in one
/// buffer of [`STREAM_CHUNK`] bytes, allocated once, and leave as one HTTP
/// chunk when it is full (`flush` does not force a short chunk). The head is
/// held back until the first chunk leaves.
struct ChunkedBody<'o, W: Write> {
    out: &'o mut W,
    /// Status line and headers, sent with the first chunk.
    head: String,
    /// HEAD: send the head, then stop the producer.
    head_only: bool,
    buf: Vec<u8>,
    /// Something was sent: the status can no longer change.
    committed: bool,
    /// Body bytes sent so far.
    sent: u64,
}

impl<W: Write> ChunkedBody<'_, W> {
    fn commit(&mut self) -> io::Result<()> {
        if !self.committed {
            self.committed = true;
            self.out.write_all(self.head.as_bytes())?;
        }
        Ok(())
    }

    fn send_chunk(&mut self) -> io::Result<()> {
        self.commit()?;
        if self.head_only {
            return Err(io::Error::other("HEAD: no body to send"));
        }
        // An empty chunk would end the body.
        if !self.buf.is_empty() {
            write!(self.out, "{:x}\r\n", self.buf.len())?;
            self.out.write_all(&self.buf)?;
            self.out.write_all(b"\r\n")?;
            self.sent += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    /// Sends what is left and the last chunk.
    fn finish(mut self) -> io::Result<()> {
        if self.head_only {
            self.commit()?;
        } else {
            self.send_chunk()?;
            self.out.write_all(b"0\r\n\r\n")?;
        }
        self.out.flush()
    }
}

impl<W: Write> Write for ChunkedBody<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() == STREAM_CHUNK {
            self.send_chunk()?;
        }
        let n = data.len().min(STREAM_CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(crate) fn too_large() -> Reply {
    Reply::error(
        413,
        format!("request body larger than {MAX_BODY} bytes"),
        String::new(),
    )
}

/// Percent-decodes one URL component (`+` as space in queries).
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent-encoding in {s:?}"))?;
                out.push(hex);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
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

    /// Runs `produce` as a streamed answer into memory.
    fn streamed(produce: Produce, head_only: bool) -> (io::Result<()>, Vec<u8>) {
        let mut sink = Vec::new();
        let r = write_stream(&mut sink, "text/plain", produce, head_only);
        (r, sink)
    }

    #[test]
    fn a_stream_goes_out_in_full_chunks_from_one_buffer() {
        let (r, out) = streamed(
            Box::new(|out| {
                for i in 0..3000u32 {
                    out.write_all(&[b'a' + (i % 26) as u8; 100])?;
                }
                Ok(())
            }),
            false,
        );
        r.unwrap();
        let (head, body) = split_answer(&out);
        assert!(head.contains("Content-Type: text/plain\r\n"), "{head}");
        let (payload, ended, sizes) = dechunk(body);
        assert!(ended);
        assert_eq!(payload.len(), 300_000);
        assert_eq!(
            sizes,
            [
                STREAM_CHUNK,
                STREAM_CHUNK,
                STREAM_CHUNK,
                STREAM_CHUNK,
                37_856
            ]
        );

        // One big write does not grow the buffer.
        let mut sink = Vec::new();
        let mut body = ChunkedBody {
            out: &mut sink,
            head: String::new(),
            head_only: false,
            buf: Vec::with_capacity(STREAM_CHUNK),
            committed: false,
            sent: 0,
        };
        body.write_all(&vec![b'x'; 5 * STREAM_CHUNK + 1]).unwrap();
        assert_eq!(body.buf.capacity(), STREAM_CHUNK);
        assert_eq!((body.buf.len(), body.sent), (1, 5 * STREAM_CHUNK as u64));
    }

    #[test]
    fn a_stream_that_fails_answers_the_error_or_stops_short() {
        let fail = || StreamError::Failed(Reply::error(503, "gone".to_string(), String::new()));
        // Before the first chunk: the error, as a fixed-length answer.
        let (r, out) = streamed(
            Box::new(move |out| {
                out.write_all(b"[1,2")?;
                Err(fail())
            }),
            false,
        );
        r.unwrap();
        let (head, body) = split_answer(&out);
        assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["message"], "gone");

        // After it: what was sent, and no last chunk.
        let (r, out) = streamed(
            Box::new(move |out| {
                out.write_all(&vec![b'x'; STREAM_CHUNK + 10])?;
                Err(fail())
            }),
            false,
        );
        assert!(r.is_err());
        let (head, body) = split_answer(&out);
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        assert_eq!(
            dechunk(body),
            (vec![b'x'; STREAM_CHUNK], false, vec![STREAM_CHUNK])
        );

        // A panic is a 500 before the first chunk.
        let (r, out) = streamed(Box::new(|_| panic!("bug")), false);
        r.unwrap();
        assert!(out.starts_with(b"HTTP/1.1 500 "));

        // HEAD: the head, and the producer stopped at its first chunk.
        let (r, out) = streamed(
            Box::new(|out| {
                for _ in 0..100 {
                    out.write_all(&[b'x'; 1024])?;
                }
                panic!("HEAD should have stopped the producer");
            }),
            true,
        );
        r.unwrap();
        let (head, body) = split_answer(&out);
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        assert!(body.is_empty());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("%2A1f2a", false).unwrap(), "*1f2a");
        assert_eq!(percent_decode("a+b", true).unwrap(), "a b");
        assert_eq!(percent_decode("a+b", false).unwrap(), "a+b");
        assert!(percent_decode("%2", false).is_err());
        assert!(percent_decode("%zz", false).is_err());
    }
}
