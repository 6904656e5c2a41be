//! Slow clients cannot take the server down: unfinished request heads are closed after the
//! header-read timeout, the connection cap makes room by closing idle connections (or
//! refuses the newcomer at once when all are busy), and a stalled request body fails
//! while a slow but moving one goes through. All on loopback, bounded in count and time.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

use crate::common::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp, TestDb};

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Waits until the server closes `stream` (EOF or reset), up to `limit`; the time it took.
async fn closed_within(
    mut stream: TcpStream,
    opened: Instant,
    limit: Duration,
) -> Option<Duration> {
    let mut buf = [0u8; 256];
    let deadline = opened + limit;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(opened.elapsed()),
            Ok(Ok(_)) => continue, // a 503 or a 408 on its way out
            Err(_) => return None,
        }
    }
}

/// `/health` over a fresh connection: its status, and how long it took.
async fn health(app: &TestApp) -> (u16, Duration) {
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let status = client
        .get(app.url("/health"))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16());
    (status, started.elapsed())
}

#[tokio::test]
async fn slow_request_heads_neither_block_health_nor_stay_open() {
    const SLOW: usize = 300;
    const CAP: u32 = 64;
    let app = TestApp::spawn_with(TestDb::sqlite(), |s| {
        s.max_connections = CAP;
        s.header_read_timeout_secs = 2;
    })
    .await;
    let opened = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nx-slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }

    let (status, took) = health(&app).await;
    assert_eq!(
        status, 200,
        "/health answers while {SLOW} slow heads are open"
    );
    assert!(took < Duration::from_secs(1), "/health took {took:?}");

    let closed = join_all(
        slow.into_iter()
            .map(|s| closed_within(s, opened, Duration::from_secs(6))),
    )
    .await;
    let before_timeout = closed
        .iter()
        .filter(|c| c.is_some_and(|t| t < Duration::from_millis(1500)))
        .count();
    assert!(
        before_timeout >= SLOW - CAP as usize,
        "past the cap of {CAP}, slow connections are closed at once; only {before_timeout} were"
    );
    assert!(
        closed.iter().all(Option::is_some),
        "every unfinished head is closed after the 2 s header timeout: {} still open",
        closed.iter().filter(|c| c.is_none()).count()
    );
    assert_eq!(health(&app).await.0, 200);
    app.stop().await;
}

/// A sign-in whose body says `length` bytes are coming; `body` is sent in `pieces`, `gap`
/// apart. Returns the status line, or `None` when the connection closed without one.
async fn login_in_pieces(
    app: &TestApp,
    body: &[u8],
    length: usize,
    pieces: usize,
    gap: Duration,
) -> (TcpStream, Option<String>) {
    let mut stream = TcpStream::connect(addr(app)).await.unwrap();
    let head = format!(
        "POST /auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\n\
         content-length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(body.len().div_ceil(pieces)) {
        tokio::time::sleep(gap).await;
        stream.write_all(chunk).await.unwrap();
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match timeout(Duration::from_secs(8), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Ok(_) => break,
            Err(_) => panic!("no answer within 8 s"),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .lines()
        .next()
        .filter(|l| !l.is_empty())
        .map(str::to_owned);
    (stream, status.map(|s| format!("{s}\n{text}")))
}

#[tokio::test]
async fn a_stalled_body_fails_and_a_slow_moving_one_goes_through() {
    let app = TestApp::spawn_with(TestDb::sqlite(), |s| s.body_read_timeout_secs = 1).await;
    let form = format!(
        "email={}&password={}",
        ADMIN_EMAIL.replace('@', "%40"),
        ADMIN_PASSWORD
    );

    // 3 s in all, never 1 s without a byte: the total time is not limited.
    let (_, moving) = login_in_pieces(
        &app,
        form.as_bytes(),
        form.len(),
        6,
        Duration::from_millis(500),
    )
    .await;
    let moving = moving.expect("an answer");
    assert!(moving.starts_with("HTTP/1.1 303"), "{moving}");
    assert!(moving.contains("location: /ui"), "{moving}");

    // Ten bytes of a promised hundred, then nothing: refused after the 1 s idle timeout.
    let started = Instant::now();
    let (_, stalled) = login_in_pieces(&app, &form.as_bytes()[..10], 100, 1, Duration::ZERO).await;
    let took = started.elapsed();
    if let Some(stalled) = stalled {
        assert!(stalled.starts_with("HTTP/1.1 4"), "{stalled}");
    }
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(4)).contains(&took),
        "the stalled body ended after {took:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn when_every_connection_is_busy_a_new_one_is_refused_at_once() {
    const CAP: usize = 8;
    let app = TestApp::spawn_with(TestDb::sqlite(), |s| {
        s.max_connections = CAP as u32;
        s.body_read_timeout_secs = 2;
    })
    .await;
    // CAP uploads that stall after their headers: each is a request in flight.
    let mut busy = Vec::new();
    for _ in 0..CAP {
        let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
        stream
            .write_all(
                b"POST /auth/login HTTP/1.1\r\nhost: x\r\n\
                  content-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\nemail=",
            )
            .await
            .unwrap();
        busy.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (status, took) = health(&app).await;
    assert_ne!(status, 200, "the cap holds while every connection is busy");
    assert!(
        took < Duration::from_secs(1),
        "refused at once, not after {took:?}"
    );

    // The stalled uploads end at their body timeout; then there is room again.
    let opened = Instant::now();
    let ended = join_all(
        busy.into_iter()
            .map(|s| closed_within(s, opened, Duration::from_secs(6))),
    )
    .await;
    assert!(ended.iter().all(Option::is_some), "{ended:?}");
    assert_eq!(health(&app).await.0, 200);
    app.stop().await;
}
