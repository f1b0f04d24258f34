//! The org's front door: a small HTTP/1 proxy on the org's public port, in front of wiremock.
//!
//! Why it exists: wiremock answers with a `Vec<u8>` it clones for every request, and the
//! responder must copy a stored body into that `Vec` first. For a daily log file of a few
//! hundred megabytes that is two fresh copies per download, most of it the kernel zeroing new
//! pages, and a wait of most of a second before the response's headers: a cost of the double,
//! not of the client under test, and one the ingest benchmark's single-large-file figures paid.
//!
//! Every request still goes to wiremock, which decides everything (routes, tokens, faults,
//! delays, the request log). Only the body of a whole log file download takes the short way:
//! the responder, seeing a request that came through this door, answers with an empty body and
//! a ticket header naming the file, and the door sends the org's stored `Bytes` itself, a
//! reference count and no copy. A request sent to wiremock directly (`MockOrg::server().uri()`)
//! carries no door header and gets the whole body from wiremock as before.

use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::responder;
use crate::state::Shared;

/// Set by the door on every request it forwards: the responder may answer with a ticket.
pub(crate) const VIA_FRONT: &str = "x-sfjwt-mock-front";
/// Set by the responder instead of a download's body: `{file id};gzip` or `{file id};csv`.
pub(crate) const BODY_TICKET: &str = "x-sfjwt-mock-body";

type Body = Either<Incoming, Full<Bytes>>;

/// The running door. Dropping it stops the door's thread and closes its connections.
pub(crate) struct Front {
    _stop: oneshot::Sender<()>,
}

impl Front {
    /// Binds a free loopback port and serves it on a thread of its own with a current-thread
    /// runtime, as wiremock does: the org works under any runtime the caller runs, and tests on
    /// a current-thread runtime cannot starve it.
    ///
    /// The listener is bound first, by [`bind`], because the org's state carries the door's
    /// address (token responses name it as the instance URL).
    pub(crate) fn start(
        listener: StdTcpListener,
        upstream: SocketAddr,
        shared: Arc<Shared>,
    ) -> std::io::Result<Front> {
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("mock-org-front".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = stopped => {}
                        () = accept_loop(listener, upstream, shared) => {}
                    }
                });
                // Dropping the runtime here drops every connection task with it.
            })?;
        Ok(Front { _stop: stop })
    }
}

/// A free loopback port for the door, and its URI.
pub(crate) fn bind() -> std::io::Result<(StdTcpListener, String)> {
    let listener = StdTcpListener::bind("127.0.0.1:0")?;
    let uri = format!("http://{}", listener.local_addr()?);
    Ok((listener, uri))
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors, say: wait for some to close instead of spinning.
                tracing::debug!(%error, "mock org front could not accept");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            if let Err(error) = serve(stream, upstream, shared).await {
                tracing::debug!(%error, "mock org front connection ended");
            }
        });
    }
}

/// One client connection, forwarded over one connection to wiremock: keep-alive on one side is
/// keep-alive on the other, and a closed client connection closes the upstream one.
async fn serve(stream: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) -> hyper::Result<()> {
    let _ = stream.set_nodelay(true);
    // The service must be `Fn` while sending upstream needs `&mut`: the upstream connection
    // belongs to a task of its own that takes the requests in order from a channel (one at a
    // time, as an HTTP/1 connection sends them), and ends when the client connection does.
    let (requests, mut queue) = mpsc::channel::<(Request<Incoming>, oneshot::Sender<_>)>(1);
    tokio::spawn(async move {
        let mut upstream = Upstream {
            address: upstream,
            sender: None,
        };
        while let Some((request, reply)) = queue.recv().await {
            let _ = reply.send(forward(request, &mut upstream, &shared).await);
        }
    });
    let service = hyper::service::service_fn(move |request| {
        let requests = requests.clone();
        async move {
            let (reply, response) = oneshot::channel();
            if requests.send((request, reply)).await.is_err() {
                return Ok::<_, hyper::Error>(bad_gateway());
            }
            Ok(response.await.unwrap_or_else(|_| bad_gateway()))
        }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
}

/// The connection to wiremock behind one client connection, opened on the first request and
/// again whenever wiremock closed it between two requests.
struct Upstream {
    address: SocketAddr,
    sender: Option<SendRequest<Incoming>>,
}

impl Upstream {
    /// A connection ready to take a request, or `None` if wiremock cannot be reached. Only an
    /// idle connection is replaced: a request once sent is never sent again.
    async fn ready(&mut self) -> Option<&mut SendRequest<Incoming>> {
        if let Some(sender) = &mut self.sender
            && sender.ready().await.is_err()
        {
            self.sender = None;
        }
        if self.sender.is_none() {
            let stream = TcpStream::connect(self.address).await.ok()?;
            let _ = stream.set_nodelay(true);
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .ok()?;
            tokio::spawn(connection);
            sender.ready().await.ok()?;
            self.sender = Some(sender);
        }
        self.sender.as_mut()
    }
}

async fn forward(
    mut request: Request<Incoming>,
    upstream: &mut Upstream,
    shared: &Shared,
) -> Response<Body> {
    request
        .headers_mut()
        .insert(VIA_FRONT, HeaderValue::from_static("1"));
    let response = match upstream.ready().await {
        Some(sender) => sender.send_request(request).await,
        None => return bad_gateway(),
    };
    let Ok(response) = response else {
        return bad_gateway();
    };
    let (mut parts, body) = response.into_parts();
    let Some(ticket) = parts.headers.remove(BODY_TICKET) else {
        return Response::from_parts(parts, Either::Left(body));
    };
    let stored = ticket
        .to_str()
        .ok()
        .and_then(|ticket| ticket.split_once(';'))
        .and_then(|(id, encoding)| {
            let gzip = match encoding {
                "gzip" => true,
                "csv" => false,
                _ => return None,
            };
            responder::stored_body(shared, id, gzip)
        });
    match stored {
        Some(stored) => {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(stored.len()));
            Response::from_parts(parts, Either::Right(Full::new(stored)))
        }
        // The file went away between wiremock's answer and this lookup (or a ticket this door
        // does not read, which the responder never writes).
        None => status(StatusCode::NOT_FOUND),
    }
}

fn bad_gateway() -> Response<Body> {
    status(StatusCode::BAD_GATEWAY)
}

fn status(code: StatusCode) -> Response<Body> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
    *response.status_mut() = code;
    response
}
