//! The storage contract, tested against the sled backend on a real directory.

use courtyard_store::{Batch, Namespace, QueueName, SledStore, Store};
use std::collections::BTreeMap;
use std::sync::Arc;

fn batch(ns: &Namespace, writes: &[(&str, Option<&str>)]) -> Batch {
    let mut b = Batch::default();
    let map: BTreeMap<String, Option<Vec<u8>>> = writes
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.map(|v| v.as_bytes().to_vec())))
        .collect();
    b.writes.insert(ns.clone(), map);
    b
}

fn get(store: &dyn Store, ns: &Namespace, key: &str) -> Option<String> {
    store
        .get(ns, key)
        .expect("get")
        .map(|v| String::from_utf8(v).expect("utf8"))
}

#[test]
fn namespaces_are_separate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SledStore::open(dir.path()).expect("open");
    let a = Namespace::new("nanhu", "counter");
    let b = Namespace::new("sunjia", "counter");
    let c = Namespace::new("nanhu", "canteen");
    store
        .commit(batch(&a, &[("k", Some("a"))]))
        .expect("commit");
    assert_eq!(get(&store, &a, "k").as_deref(), Some("a"));
    assert_eq!(get(&store, &b, "k"), None);
    assert_eq!(get(&store, &c, "k"), None);
}

#[test]
fn a_batch_sets_deletes_and_appends_together() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SledStore::open(dir.path()).expect("open");
    let ns = Namespace::new("nanhu", "counter");
    store
        .commit(batch(&ns, &[("a", Some("1")), ("b", Some("2"))]))
        .expect("commit");
    let mut second = batch(&ns, &[("a", None), ("c", Some("3"))]);
    second.writes.insert(
        Namespace::new("nanhu", "other"),
        BTreeMap::from([("x".to_owned(), Some(b"y".to_vec()))]),
    );
    second
        .appends
        .push((QueueName::events("nanhu"), b"e1".to_vec()));
    second
        .appends
        .push((QueueName::events("nanhu"), b"e2".to_vec()));
    store.commit(second).expect("commit");
    assert_eq!(get(&store, &ns, "a"), None);
    assert_eq!(get(&store, &ns, "c").as_deref(), Some("3"));
    assert_eq!(
        get(&store, &Namespace::new("nanhu", "other"), "x").as_deref(),
        Some("y")
    );
    let events = store
        .read_queue(&QueueName::events("nanhu"), None, 10)
        .expect("queue");
    let values: Vec<&[u8]> = events.iter().map(|e| e.value.as_slice()).collect();
    assert_eq!(values, [b"e1".as_slice(), b"e2"]);
    assert!(events[0].seq < events[1].seq);
    let rest = store
        .read_queue(&QueueName::events("nanhu"), Some(events[0].seq), 10)
        .expect("queue");
    assert_eq!(rest.len(), 1);
    assert!(
        store
            .read_queue(&QueueName::events("sunjia"), None, 10)
            .expect("queue")
            .is_empty()
    );
}

#[test]
fn scan_pages_by_prefix_in_key_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SledStore::open(dir.path()).expect("open");
    let ns = Namespace::new("nanhu", "library");
    store
        .commit(batch(
            &ns,
            &[
                ("book/3", Some("c")),
                ("book/1", Some("a")),
                ("book/2", Some("b")),
                ("card/1", Some("x")),
                ("boo", Some("-")),
            ],
        ))
        .expect("commit");
    let keys = |v: Vec<(String, Vec<u8>)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(
        keys(store.scan(&ns, "book/", None, 2).expect("scan")),
        ["book/1", "book/2"]
    );
    assert_eq!(
        keys(store.scan(&ns, "book/", Some("book/2"), 10).expect("scan")),
        ["book/3"]
    );
    assert_eq!(
        keys(store.scan(&ns, "book/", Some("a"), 10).expect("scan")),
        ["book/1", "book/2", "book/3"]
    );
    assert!(
        store
            .scan(&ns, "book/", Some("book/3"), 10)
            .expect("scan")
            .is_empty()
    );
    assert_eq!(store.scan(&ns, "", None, 100).expect("scan").len(), 5);
}

#[test]
fn synced_batches_survive_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ns = Namespace::new("nanhu", "counter");
    {
        let store = SledStore::open(dir.path()).expect("open");
        store
            .commit(batch(&ns, &[("k", Some("v"))]))
            .expect("commit");
        store.sync().expect("sync");
    }
    let store = SledStore::open(dir.path()).expect("reopen");
    assert_eq!(get(&store, &ns, "k").as_deref(), Some("v"));
}

#[test]
fn concurrent_commits_and_syncs_all_land() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SledStore::open(dir.path()).expect("open"));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let ns = Namespace::new("nanhu", "counter");
                for i in 0..50 {
                    store
                        .commit(batch(&ns, &[(&format!("t{t}/{i}"), Some("x"))]))
                        .expect("commit");
                    store.sync().expect("sync");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let ns = Namespace::new("nanhu", "counter");
    assert_eq!(store.scan(&ns, "t", None, 1000).expect("scan").len(), 200);
}

#[test]
fn scan_back_pages_newest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SledStore::open(dir.path()).expect("open");
    let ns = Namespace::new("nanhu", "$workflows");
    store
        .commit(batch(
            &ns,
            &[
                ("run/1", Some("a")),
                ("run/2", Some("b")),
                ("run/3", Some("c")),
                ("runz", Some("not a run")),
                ("ruo", Some("after the prefix")),
                ("rum", Some("before the prefix")),
            ],
        ))
        .expect("commit");
    let keys = |v: Vec<(String, Vec<u8>)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(
        keys(store.scan_back(&ns, "run/", None, 2).expect("scan")),
        ["run/3", "run/2"]
    );
    assert_eq!(
        keys(
            store
                .scan_back(&ns, "run/", Some("run/2"), 10)
                .expect("scan")
        ),
        ["run/1"]
    );
    assert!(
        store
            .scan_back(&ns, "nope/", None, 10)
            .expect("scan")
            .is_empty()
    );
}

#[test]
fn commit_returns_the_sequence_numbers_of_its_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SledStore::open(dir.path()).expect("open");
    let q = QueueName::events("nanhu");
    let mut b = Batch::default();
    b.appends.push((q.clone(), b"one".to_vec()));
    b.appends.push((q.clone(), b"two".to_vec()));
    let seqs = store.commit(b).expect("commit");
    let read: Vec<u64> = store
        .read_queue(&q, None, 10)
        .expect("read")
        .into_iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, read);
    assert!(seqs[0] < seqs[1]);
    assert_eq!(store.queue_last(&q).expect("last"), Some(seqs[1]));
    assert_eq!(
        store
            .queue_last(&QueueName::events("sunjia"))
            .expect("last"),
        None
    );
}

/// A consumer keeps a cursor (the last sequence number it handled): entries must
/// become visible in sequence order, or a cursor would skip one committed late.
#[test]
fn a_queue_cursor_never_skips_an_entry_under_concurrent_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SledStore::open(dir.path()).expect("open"));
    let q = QueueName::events("nanhu");
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            let q = q.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    let mut b = Batch::default();
                    b.appends.push((q.clone(), format!("{t}/{i}").into_bytes()));
                    store.commit(b).expect("commit");
                }
            })
        })
        .collect();
    let mut cursor = None;
    let mut seen = 0;
    while seen < 2000 {
        for entry in store.read_queue(&q, cursor, 100).expect("read") {
            cursor = Some(entry.seq);
            seen += 1;
        }
    }
    for w in writers {
        w.join().expect("writer");
    }
    assert_eq!(seen, 2000);
    assert_eq!(store.read_queue(&q, cursor, 10).expect("read").len(), 0);
}
