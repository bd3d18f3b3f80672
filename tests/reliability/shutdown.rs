//! Graceful shutdown (issue item 4): SIGTERM to a real `iops serve` while 100 uploads
//! are still trickling in. Every one of them completes (201), new connections are
//! refused as soon as the stop begins, and the process then exits 0.
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use iops_tests::{TestDb, count};
use sea_orm::{ConnectionTrait, Statement};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Barrier;

use crate::concurrency::stored_files;
use crate::support::{
    Process, RawOutcome, client, login, multipart_file, read_until_closed, register,
};

const IN_FLIGHT: usize = 100;
/// Pieces each body is sent in, and the pause between them: about 2 s per upload.
const PIECES: usize = 10;
const PAUSE: Duration = Duration::from_millis(200);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_100_in_flight_uploads_finish() {
    let db = TestDb::sqlite().await;
    let data_dir = db.data_dir();
    let mut server = Process::serve(&db.url, &data_dir, &[]).await;
    let c = client();
    register(&c, &server.base, "ada@example.com").await;
    let conn = db.connect().await;
    conn.execute_raw(Statement::from_string(
        conn.get_database_backend(),
        "UPDATE users SET tier = 'pro'",
    ))
    .await
    .unwrap();
    let token = login(&c, &server.base, "ada@example.com").await;

    // Every upload has sent its head and a first piece before the signal; the rest
    // arrives after it.
    let started = Barrier::new(IN_FLIGHT + 1);
    let signalled = Barrier::new(IN_FLIGHT + 1);
    let addr = server.addr;
    let uploads = (0..IN_FLIGHT).map(|i| {
        let (token, started, signalled) = (&token, &started, &signalled);
        async move {
            let csv: Vec<u8> = format!("upload,row\n{i},1\n{i},2\n").into_bytes();
            let (boundary, body) = multipart_file(&format!("u{i}.csv"), &csv);
            let mut stream = TcpStream::connect(addr).await.expect("connect before the stop");
            let head = format!(
                "POST /api/v1/datasets HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            let piece = body.len().div_ceil(PIECES);
            let mut pieces = body.chunks(piece);
            stream.write_all(pieces.next().unwrap()).await.unwrap();
            started.wait().await;
            signalled.wait().await;
            for piece in pieces {
                tokio::time::sleep(PAUSE).await;
                stream
                    .write_all(piece)
                    .await
                    .unwrap_or_else(|e| panic!("upload {i} cut off mid-body: {e}"));
            }
            read_until_closed(&mut stream, Duration::from_secs(60)).await
        }
    });
    let signal = async {
        started.wait().await;
        // Give the server a moment to have accepted every connection.
        tokio::time::sleep(Duration::from_millis(500)).await;
        server.signal("TERM");
        let at = Instant::now();
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Meanwhile, a new connection is refused (or, at the latest, never served).
        let late = match TcpStream::connect(addr).await {
            Err(_) => None,
            Ok(mut stream) => {
                let _ = stream
                    .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .await;
                Some(read_until_closed(&mut stream, Duration::from_secs(3)).await)
            }
        };
        signalled.wait().await;
        (at, late)
    };
    let (outcomes, (signalled_at, late)) = tokio::join!(join_all(uploads), signal);

    let refused = late.is_none();
    if let Some(outcome) = late {
        assert!(
            !matches!(outcome, RawOutcome::Answered(_)),
            "a connection made after SIGTERM was served: {outcome:?}"
        );
    }
    for (i, outcome) in outcomes.iter().enumerate() {
        match outcome {
            RawOutcome::Answered(res) => {
                res.record("upload during shutdown");
                assert_eq!(res.status, 201, "upload {i}: {}", res.text());
            }
            other => panic!("upload {i} got no answer: {other:?}"),
        }
    }
    let status = server
        .wait_exit(Duration::from_secs(40))
        .await
        .expect("iops serve exits after the in-flight requests");
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    eprintln!(
        "shutdown: {IN_FLIGHT} uploads finished, exit 0 {:?} after SIGTERM; a new connection \
         meanwhile was {}",
        signalled_at.elapsed(),
        if refused {
            "refused"
        } else {
            "accepted but never served"
        }
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the port is closed"
    );

    assert_eq!(count(&conn, "datasets").await, IN_FLIGHT as i64);
    assert_eq!(stored_files(&data_dir.join("datasets")), IN_FLIGHT);
    conn.close().await.ok();
}
