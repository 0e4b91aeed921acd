//! A partition server that dies in the middle of a call, as a SIGKILLed process does (its
//! connection closes with the request open and no answer). The front-end retries the write on
//! the owner a fresh map names; while no owner can take it, the client gets 503
//! ServiceUnavailable with Retry-After, never 500.
//!
//! The dying owner is a TCP listener that resets its connections (the part of a killed
//! process the front-end sees); the real manager names it owner of photos/"m".. while the
//! test heartbeats on its behalf, and moves the range to a live server once that stops.

use crate::common::client::{pattern, Reply};
use crate::common::{split_stamp_with, wait_for, Options, Stamp};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use strata_types::keys;
use tokio::io::AsyncReadExt;

/// How much of a connection a dying server reads before it dies (and resets it): nothing (the
/// call is on a connection that closes before the request went out: tonic answers Cancelled
/// "operation was canceled", which was a 500), or the HTTP/2 preface, the client's settings and
/// the request's HEADERS frame (the call is open when the connection resets: Unknown
/// "transport error").
const DEATHS: [usize; 2] = [0, 120];

const DYING_ID: &str = "ps-dying";

/// A TCP server on 127.0.0.1 that accepts gRPC connections, reads `read_before_dying` bytes and
/// resets the connection without answering, as a SIGKILLed process's kernel does; returns its
/// address and how many connections it took.
async fn dying_server(read_before_dying: usize) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut read = 0;
                while read < read_before_dying {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => read += n,
                    }
                }
                // SO_LINGER 0: the close sends RST, like the kernel closing a killed process's
                // socket that still holds unread bytes.
                let _ = socket.set_zero_linger();
                drop(socket);
            });
        }
    });
    (addr, accepted)
}

fn upper() -> Vec<u8> {
    keys::object_key("photos", "m")
}

/// A split stamp whose upper range (photos/"m"..) the manager has given to a dying server that
/// it believes alive; the front-end has bucket photos and a map naming the dying owner.
/// Returns the stamp, the token of the heartbeats on the dying server's behalf, and how many
/// connections the dying server took.
async fn stamp_with_dying_owner(
    read_before_dying: usize,
    retry_budget_ms: u64,
) -> (Stamp, tokio_util::sync::CancellationToken, Arc<AtomicUsize>) {
    let stamp = split_stamp_with(Options {
        retry_budget_ms,
        ..Options::default()
    })
    .await;
    let (dead, accepted) = dying_server(read_before_dying).await;
    let beating = stamp.heartbeat_as(DYING_ID, &dead).await;
    stamp.assign(&upper(), DYING_ID, &dead).await;
    // The bucket lives in the lower range; this first request also loads the map.
    let c = &stamp.client;
    c.create_bucket("photos").await;
    (stamp, beating, accepted)
}

fn assert_503_with_retry_after(reply: &Reply) {
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert!(!reply.text().contains("InternalError"), "{}", reply.text());
    assert!(
        reply.text().contains("<Code>ServiceUnavailable</Code>"),
        "{}",
        reply.text()
    );
    assert!(!reply.header("retry-after").is_empty(), "no Retry-After");
}

/// Waits until the manager has moved the upper range off the dying server and its new owner
/// serves it.
async fn wait_for_failover(stamp: &Stamp) {
    wait_for("the upper range to leave the dying server", || {
        let owner = stamp.range_at(&upper()).owner_id;
        async move { (owner != DYING_ID).then_some(()) }
    })
    .await;
    stamp.wait_until_served().await;
}

#[tokio::test]
async fn e2e_a_put_whose_owner_dies_mid_call_is_retried_on_the_new_owner() {
    for read_before_dying in DEATHS {
        a_put_whose_owner_dies_is_retried(read_before_dying).await;
    }
}

async fn a_put_whose_owner_dies_is_retried(read_before_dying: usize) {
    // The budget covers the manager's server timeout (1.5 s) and the new owner's load.
    let (stamp, beating, accepted) = stamp_with_dying_owner(read_before_dying, 15_000).await;
    // The dying server stops heartbeating: the manager gives its range to a live server.
    beating.cancel();
    let c = &stamp.client;
    let body = pattern(4096);
    let reply = c.put("/photos/z", body.clone()).await;
    assert_eq!(
        reply.status,
        200,
        "death after {read_before_dying} bytes: {}",
        reply.text()
    );
    assert!(
        accepted.load(Ordering::SeqCst) >= 1,
        "the PUT never reached the dying server"
    );
    assert_eq!(c.call("GET", "/photos/z").await.body, body);
    assert_ne!(stamp.range_at(&upper()).owner_id, DYING_ID);
}

#[tokio::test]
async fn e2e_calls_to_an_owner_that_dies_mid_call_answer_503_with_retry_after() {
    for read_before_dying in DEATHS {
        calls_to_a_dying_owner_answer_503(read_before_dying).await;
    }
}

async fn calls_to_a_dying_owner_answer_503(read_before_dying: usize) {
    // The manager keeps believing the dying server alive: no failover within the budget.
    let (stamp, beating, accepted) = stamp_with_dying_owner(read_before_dying, 400).await;
    let c = &stamp.client;
    let put = c.put("/photos/z", b"zzz".to_vec()).await;
    assert_503_with_retry_after(&put);
    assert!(accepted.load(Ordering::SeqCst) >= 1);
    for (method, path) in [
        ("GET", "/photos/z"),
        ("HEAD", "/photos/z"),
        ("DELETE", "/photos/z"),
    ] {
        let reply = c.call(method, path).await;
        assert_eq!(
            reply.status,
            503,
            "{method} {path}, death after {read_before_dying} bytes: {}",
            reply.text()
        );
        assert!(!reply.header("retry-after").is_empty(), "{method} {path}");
    }
    // Once a live server takes the range over, the refused PUT left nothing behind.
    beating.cancel();
    wait_for_failover(&stamp).await;
    let head = wait_for("a HEAD answered by the new owner", || async {
        let reply = c.call("HEAD", "/photos/z").await;
        (reply.status != 503).then_some(reply)
    })
    .await;
    assert_eq!(head.status, 404);
}
