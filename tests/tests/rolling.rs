//! A rolling restart (README, "Rolling restarts") of a cluster of three primaries with a
//! replica each, under write load through a cluster client: every node in turn gets
//! SIGTERM (a primary hands its shard to its replica first), is started again and
//! resyncs; no acknowledged write is lost and the clients see no error (redirects are
//! followed by the client).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ember_tests::TestCluster;
use redis::AsyncCommands;

const T: Duration = Duration::from_secs(60);

fn field(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_string())
}

/// Every node serves, every replica streams, every primary has its replica online.
fn settled(c: &TestCluster) -> anyhow::Result<bool> {
    for i in 0..c.nodes.len() {
        let mut con = c.conn(i)?;
        let cluster: String = redis::cmd("CLUSTER").arg("INFO").query(&mut con)?;
        if field(&cluster, "cluster_state").as_deref() != Some("ok") {
            return Ok(false);
        }
        let repl: String = redis::cmd("INFO").arg("replication").query(&mut con)?;
        let ok = match field(&repl, "role").as_deref() {
            Some("master") => {
                field(&repl, "connected_slaves").as_deref() == Some("1")
                    && repl.contains("state=online")
            }
            Some("slave") => field(&repl, "master_link_status").as_deref() == Some("up"),
            _ => false,
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

#[test]
fn a_rolling_restart_of_three_primaries_and_three_replicas_loses_nothing() {
    let mut c = TestCluster::start(6, Duration::from_secs(3));
    c.ctl_ok(&[
        "bootstrap",
        "--replicas",
        "1",
        "n1",
        "n2",
        "n3",
        "n4",
        "n5",
        "n6",
    ]);
    c.wait("the cluster settled", T, settled);

    let stop = Arc::new(AtomicBool::new(false));
    // Each error with the step of the restart it happened in.
    let step = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let errors = Arc::new(Mutex::new(Vec::<(usize, String)>::new()));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (stop, errors, step) = (stop.clone(), errors.clone(), step.clone());
            let fail = move |e: redis::RedisError| {
                errors
                    .lock()
                    .unwrap()
                    .push((step.load(Ordering::Relaxed), e.to_string()))
            };
            let client = c.cluster_client();
            std::thread::spawn(move || {
                // The async cluster client: it reconnects and refreshes its slot map
                // when a node goes away (the sync one stops at a dead connection).
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let mut conn = client.get_async_connection().await.unwrap();
                    let (mut sets, mut incrs) = (Vec::new(), BTreeMap::<String, u64>::new());
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let key = format!("rr:{w}:{n}");
                        match conn.set::<_, _, ()>(&key, n).await {
                            Ok(()) => sets.push((key, n)),
                            Err(e) => fail(e),
                        }
                        let ctr = format!("rrc:{w}:{}", n % 32);
                        match conn.incr::<_, _, u64>(&ctr, 1).await {
                            Ok(v) => {
                                incrs.insert(ctr, v);
                            }
                            Err(e) => fail(e),
                        }
                    }
                    (sets, incrs)
                })
            })
        })
        .collect();
    let total = |c: &TestCluster| -> anyhow::Result<i64> {
        let mut n = 0;
        for i in 0..c.nodes.len() {
            let mut con = c.conn(i)?;
            let repl: String = redis::cmd("INFO").arg("replication").query(&mut con)?;
            if field(&repl, "role").as_deref() == Some("master") {
                n += redis::cmd("DBSIZE").query::<i64>(&mut con)?;
            }
        }
        Ok(n)
    };
    c.wait("writes flow", T, |c| Ok(total(c)? > 300));

    for i in 0..c.nodes.len() {
        let before = total(&c).unwrap_or(0);
        step.store(2 * i + 1, Ordering::Relaxed);
        c.nodes[i].signal("TERM");
        assert!(
            c.nodes[i].wait_exit(T).is_some(),
            "{} did not stop on SIGTERM",
            c.specs[i].name
        );
        step.store(2 * i + 2, Ordering::Relaxed);
        c.restart_node(i);
        c.wait(
            &format!("{} is back and synced", c.specs[i].name),
            T,
            settled,
        );
        c.wait("writes flow again", T, |c| Ok(total(c)? > before + 100));
    }

    stop.store(true, Ordering::Relaxed);
    let (mut sets, mut incrs) = (Vec::new(), BTreeMap::new());
    for w in writers {
        let (s, i) = w.join().unwrap();
        sets.extend(s);
        incrs.extend(i);
    }
    let errors = errors.lock().unwrap().clone();
    eprintln!(
        "rolling restart: {} SETs and {} counters acknowledged, {} client errors",
        sets.len(),
        incrs.len(),
        errors.len()
    );
    let mut by_step = BTreeMap::<usize, usize>::new();
    for (s, _) in &errors {
        *by_step.entry(*s).or_default() += 1;
    }
    assert!(
        errors.is_empty(),
        "client errors by step (odd: a node stopping, even: restarting): {by_step:?}; the first: {:?}",
        &errors[..errors.len().min(5)]
    );
    ember_tests::assert_acknowledged(&c, &sets, &incrs);
}
