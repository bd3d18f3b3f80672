//! Whether the client of a request is still there, for work worth stopping when it leaves
//! (an analysis run). actix-web 4 does not drop a handler whose client disconnected
//! (actix/actix-web#3462), so a long handler races its work against [`gone`].
use std::any::Any;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::dev::Extensions;

/// How often a waiting handler looks at its connection.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// The connection's socket, as `HttpServer::on_connect` saw it.
#[derive(Clone, Copy, Debug)]
struct Socket(RawFd);

/// `HttpServer::on_connect`: remembers each TCP connection's socket.
pub fn remember(conn: &dyn Any, data: &mut Extensions) {
    if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
        data.insert(Socket(tcp.as_raw_fd()));
    }
}

/// Resolves once the client of `req` has closed its connection; never when that cannot be
/// told (no TCP socket, or the socket cannot be looked at).
pub async fn gone(req: &HttpRequest) {
    let Some(stream) = req.conn_data::<Socket>().and_then(|s| own_copy(*s)) else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        // A peek never takes bytes from the connection: actix reads them as usual.
        match stream.peek(&mut [0u8; 1]) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// A descriptor of our own for the connection's socket (closed when dropped, never the
/// connection's).
fn own_copy(socket: Socket) -> Option<std::net::TcpStream> {
    // SAFETY: the descriptor is the socket of the connection this request arrived on, and
    // actix keeps a connection's socket open while one of its requests is being handled:
    // it is valid for this borrow, which only duplicates it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(socket.0) };
    let stream = std::net::TcpStream::from(borrowed.try_clone_to_owned().ok()?);
    // Non-blocking already (the flag belongs to the socket tokio set up); said again so a
    // peek can never block a worker.
    stream.set_nonblocking(true).ok()?;
    Some(stream)
}
