//! End to end: a partition server that dies in the middle of a call, as a SIGKILLed process
//! does (its connection closes with the request open and no answer). The front-end retries the
//! write on the owner a fresh map names; while no owner can take it, the client gets 503
//! ServiceUnavailable with Retry-After, never 500.

use crate::e2e_tests::{assignment, cluster, split_map, Reply};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use strata_proto::manager::PartitionMap;
use strata_types::keys;
use tokio::io::AsyncReadExt;

/// How much of a connection a dying server reads before it dies (and resets it): nothing (the
/// call is on a connection that closes before the request went out: tonic answers Cancelled
/// "operation was canceled", which was a 500), or the HTTP/2 preface, the client's settings and
/// the request's HEADERS frame (the call is open when the connection resets: Unknown
/// "transport error").
const DEATHS: [usize; 2] = [0, 120];

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

/// A's range below photos/"m", the rest owned by `upper`.
fn map_with_upper(version: u64, a: &str, upper: &str) -> PartitionMap {
    let split = keys::object_key("photos", "m");
    PartitionMap {
        version,
        ranges: vec![
            assignment(1, Vec::new(), split.clone(), a),
            assignment(2, split, Vec::new(), upper),
        ],
        leader_hint: String::new(),
    }
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

#[tokio::test]
async fn e2e_a_put_whose_owner_dies_mid_call_is_retried_on_the_new_owner() {
    for read_before_dying in DEATHS {
        a_put_whose_owner_dies_is_retried(read_before_dying).await;
    }
}

async fn a_put_whose_owner_dies_is_retried(read_before_dying: usize) {
    let (dead, accepted) = dying_server(read_before_dying).await;
    // The first map names the dying server for photos/"m".. ; the next one names B.
    let cluster = cluster(
        move |a, b| {
            let mut next = split_map(a, b);
            next.version = 2;
            vec![map_with_upper(1, a, &dead), next]
        },
        3_000,
    )
    .await;
    let c = &cluster.client;
    assert_eq!(c.send("PUT", "/photos", &[], &[], vec![]).await.status, 200);
    let body = crate::e2e_tests::pattern(4096);
    let reply = c.send("PUT", "/photos/z", &[], &[], body.clone()).await;
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
    assert_eq!(
        c.send("GET", "/photos/z", &[], &[], vec![]).await.body,
        body
    );
    assert_eq!(cluster.store.lock().unwrap().puts_committed, 1);
}

#[tokio::test]
async fn e2e_calls_to_an_owner_that_dies_mid_call_answer_503_with_retry_after() {
    for read_before_dying in DEATHS {
        calls_to_a_dying_owner_answer_503(read_before_dying).await;
    }
}

async fn calls_to_a_dying_owner_answer_503(read_before_dying: usize) {
    let (dead, accepted) = dying_server(read_before_dying).await;
    // Every map names the dying server: the failover never comes within the budget.
    let cluster = cluster(move |a, _| vec![map_with_upper(1, a, &dead)], 400).await;
    let c = &cluster.client;
    assert_eq!(c.send("PUT", "/photos", &[], &[], vec![]).await.status, 200);
    let put = c.send("PUT", "/photos/z", &[], &[], b"zzz".to_vec()).await;
    assert_503_with_retry_after(&put);
    assert!(accepted.load(Ordering::SeqCst) >= 1);
    for (method, path) in [
        ("GET", "/photos/z"),
        ("HEAD", "/photos/z"),
        ("DELETE", "/photos/z"),
    ] {
        let reply = c.send(method, path, &[], &[], vec![]).await;
        assert_eq!(
            reply.status,
            503,
            "{method} {path}, death after {read_before_dying} bytes: {}",
            reply.text()
        );
        assert!(!reply.header("retry-after").is_empty(), "{method} {path}");
    }
    assert_eq!(cluster.store.lock().unwrap().puts_committed, 0);
}
