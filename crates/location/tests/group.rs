//! The location group on real sockets: three members in this process, reached through the
//! same `LocationClient` the front-ends use. Names stay unique and held while the leader is
//! killed in the middle of a run of reservations; the single-process table of earlier versions
//! is imported once, before any reservation is taken.

use std::time::{Duration, Instant};
use strata_location::node::{start, LocationOptions, RunningLocation};
use strata_location::store::LocationStore;
use strata_location::LocationClient;
use strata_proto::location::{
    BucketLocation, ReleaseBucketRequest, ReportStampRequest, ReserveBucketRequest,
};
use strata_types::NodeId;
use tokio_util::sync::CancellationToken;

const WAIT_MS: u64 = 20_000;

struct Member {
    running: RunningLocation,
    token: CancellationToken,
}

/// Starts members 1..=3 with their data in `dirs` (at `addrs` again on a restart: the group
/// keeps its members' addresses); answers them and the `--location` string.
async fn start_group(dirs: &[tempfile::TempDir], addrs: Option<&str>) -> (Vec<Member>, String) {
    let mut listeners = Vec::new();
    let wanted: Vec<String> = match addrs {
        Some(addrs) => addrs.split(',').map(str::to_string).collect(),
        None => vec!["127.0.0.1:0".to_string(); dirs.len()],
    };
    for addr in wanted {
        listeners.push(tokio::net::TcpListener::bind(addr).await.unwrap());
    }
    let addrs: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    let members = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| format!("{}={addr}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut started = Vec::new();
    for (i, (listener, dir)) in listeners.into_iter().zip(dirs).enumerate() {
        let options = LocationOptions {
            data_dir: dir.path().to_path_buf(),
            node_id: NodeId::new(i as u64 + 1),
            members: members.clone(),
            ..Default::default()
        };
        let token = CancellationToken::new();
        let running = start(&options, listener, token.clone()).await.unwrap();
        started.push(Member { running, token });
    }
    (started, addrs.join(","))
}

/// Waits until one member leads and takes reservations; answers its index.
async fn leader_of(members: &[Member]) -> usize {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    loop {
        let serving = |m: &Member| !m.token.is_cancelled() && m.running.takes_reservations();
        if let Some(i) = members.iter().position(serving) {
            return i;
        }
        assert!(Instant::now() < deadline, "no member took reservations");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A front-end's report of stamp-1.
fn report(endpoint: &str) -> ReportStampRequest {
    ReportStampRequest {
        stamp: "stamp-1".into(),
        region: "us-east-1".into(),
        endpoint: endpoint.into(),
    }
}

fn reserve(bucket: &str, owner: &str) -> ReserveBucketRequest {
    ReserveBucketRequest {
        bucket: bucket.into(),
        owner_access_key: owner.into(),
        stamp: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_stay_unique_and_held_when_the_leader_is_killed() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (members, addrs) = start_group(&dirs, None).await;
    let client = LocationClient::new(&addrs).unwrap();
    let first_leader = leader_of(&members).await;
    // Two front-ends of stamp-1 report it: the first registers it, the second adds its
    // endpoint, a repeated report changes nothing.
    for (endpoint, changes) in [
        ("http://a:9000", true),
        ("http://b:9000", true),
        ("http://a:9000", false),
    ] {
        let answer = client.report_stamp(report(endpoint)).await.unwrap();
        assert_eq!(answer.changed, changes, "report from {endpoint}");
    }

    for i in 0..20 {
        if i == 10 {
            // Kill the leader between two reservations; the client finds the next one.
            members[first_leader].token.cancel();
        }
        let answer = client
            .reserve_bucket(reserve(&format!("bucket-{i}"), "owner-a"))
            .await
            .unwrap_or_else(|status| panic!("reserving bucket-{i}: {status:?}"));
        // A reservation the killed leader committed before it stopped is answered on retry
        // as the caller's own hold: either way the name is the caller's.
        let held = answer.location.clone().unwrap();
        assert_eq!(held.owner_access_key, "owner-a", "bucket-{i}: {answer:?}");
        assert_eq!(held.stamp, "stamp-1", "placed on the only registered stamp");
    }
    let second_leader = leader_of(&members).await;
    assert_ne!(second_leader, first_leader);

    // Every name is held once, by its owner; another owner is told who holds it.
    for i in 0..20 {
        let name = format!("bucket-{i}");
        let found = client.lookup_bucket(&name).await.unwrap().location.unwrap();
        assert_eq!(found.owner_access_key, "owner-a", "{name}");
        let again = client
            .reserve_bucket(reserve(&name, "owner-b"))
            .await
            .unwrap();
        assert!(!again.reserved, "{name} reserved twice");
        assert_eq!(again.location.unwrap().owner_access_key, "owner-a");
    }
    let stamps = client.list_stamps().await.unwrap().stamps;
    assert_eq!(stamps.len(), 1, "{stamps:?}");
    assert_eq!(stamps[0].buckets, 20);
    assert_eq!(stamps[0].state, "open");
    assert_eq!(stamps[0].endpoints, ["http://a:9000", "http://b:9000"]);
    assert_eq!(stamps[0].region, "us-east-1");

    // Only the holder releases; a released name is free again.
    let release = |owner: &str| ReleaseBucketRequest {
        bucket: "bucket-3".into(),
        owner_access_key: owner.into(),
    };
    assert!(
        !client
            .release_bucket(release("owner-b"))
            .await
            .unwrap()
            .released
    );
    assert!(
        client
            .release_bucket(release("owner-a"))
            .await
            .unwrap()
            .released
    );
    assert!(client
        .lookup_bucket("bucket-3")
        .await
        .unwrap()
        .location
        .is_none());
    let taken_over = client
        .reserve_bucket(reserve("bucket-3", "owner-b"))
        .await
        .unwrap();
    assert!(taken_over.reserved);

    drop(client);
    for member in members {
        member.token.cancel();
        member.running.join().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_earlier_single_process_table_is_imported_once() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    {
        // Member 1's folder holds the table the single location process kept.
        let old = LocationStore::open(dirs[0].path()).unwrap();
        for (bucket, owner) in [("old-a", "k1"), ("old-b", "k2")] {
            let location = BucketLocation {
                bucket: bucket.into(),
                stamp: "stamp-1".into(),
                owner_access_key: owner.into(),
                created_ms: 5,
                region: String::new(),
                last_move: None,
            };
            old.reserve(location).await.unwrap();
        }
    }
    let (members, addrs) = start_group(&dirs, None).await;
    let client = LocationClient::new(&addrs).unwrap();
    leader_of(&members).await;

    let taken = client.reserve_bucket(reserve("old-a", "k9")).await.unwrap();
    assert!(!taken.reserved, "an imported name must stay held");
    assert_eq!(taken.location.unwrap().owner_access_key, "k1");
    let found = client
        .lookup_bucket("old-b")
        .await
        .unwrap()
        .location
        .unwrap();
    assert_eq!(
        (found.owner_access_key.as_str(), found.created_ms),
        ("k2", 5)
    );

    // A released imported name is not imported again when the members restart.
    let release = ReleaseBucketRequest {
        bucket: "old-b".into(),
        owner_access_key: "k2".into(),
    };
    assert!(client.release_bucket(release).await.unwrap().released);
    drop(client);
    for member in members {
        member.token.cancel();
        member.running.join().await;
    }
    let (members, _) = start_group(&dirs, Some(&addrs)).await;
    let client = LocationClient::new(&addrs).unwrap();
    leader_of(&members).await;
    assert!(client
        .lookup_bucket("old-b")
        .await
        .unwrap()
        .location
        .is_none());
    assert!(client
        .lookup_bucket("old-a")
        .await
        .unwrap()
        .location
        .is_some());
    drop(client);
    for member in members {
        member.token.cancel();
        member.running.join().await;
    }
}
