//! Writes refused while a node's data cannot reach the disk, as Redis refuses them
//! (`MISCONF`): after a failed snapshot with `save` points (compared reply for reply
//! with a redis-server in the same situation), and while the append-only file cannot
//! be written (a full disk: a small tmpfs), until the disk takes writes again, with
//! nothing acknowledged lost.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ember_tests::persist::info_field;
use ember_tests::{wait_until, TestCluster};

const T: Duration = Duration::from_secs(30);

/// A reply as text, errors included, so two servers' replies compare.
fn reply(con: &mut redis::Connection, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query::<redis::Value>(con) {
        Ok(v) => format!("{v:?}"),
        Err(e) => format!("error: {e}"),
    }
}

/// A failed `BGSAVE` with `save` points refuses writes and `PING` (not reads, not
/// `CONFIG`), in a transaction and inside a script too, until
/// `stop-writes-on-bgsave-error no`, no `save` points, or a save that succeeds: the same
/// replies as redis-server's, step by step.
#[test]
fn a_failed_snapshot_refuses_writes_as_redis() {
    let c = TestCluster::single_node(&[]);
    let redis_dir = tempfile::tempdir().unwrap();
    let redis_data = redis_dir.path().join("data");
    std::fs::create_dir(&redis_data).unwrap();
    let (_redis, r) = ember_tests::redis_server(&redis_data, &redis_dir.path().join("redis.log"));
    let e = c.conn(0).unwrap();
    // Where each one's snapshot goes is a directory (with a file in it): the rename
    // that ends a save fails.
    let blocked = [
        redis_data.join("dump.rdb"),
        c.specs[0].data_dir.join("dump.ember"),
    ];
    let mut p = Pair { r, e };
    p.both(&["CONFIG", "SET", "save", "3600 1"]);
    p.both(&["SET", "{k}a", "1"]);
    for d in &blocked {
        std::fs::create_dir(d).unwrap();
        std::fs::write(d.join("x"), "x").unwrap();
    }
    p.both(&["BGSAVE"]);
    p.wait_saved("err");
    let steps: &[&[&str]] = &[
        &["SET", "{k}a", "2"],
        &["PING"],
        &["GET", "{k}a"],
        &["DEL", "{k}a"],
        &["INCR", "{k}n"],
        &["MULTI"],
        &["SET", "{k}a", "3"],
        &["GET", "{k}a"],
        &["EXEC"],
        &["EVAL", "return redis.call('GET', KEYS[1])", "1", "{k}a"],
        &["EVAL", "return redis.call('SET', KEYS[1], 4)", "1", "{k}a"],
        &["EVAL", "return redis.pcall('SET', KEYS[1], 4)", "1", "{k}a"],
        &["CONFIG", "SET", "stop-writes-on-bgsave-error", "no"],
        &["CONFIG", "GET", "stop-writes-on-bgsave-error"],
        &["SET", "{k}a", "5"],
        &["CONFIG", "SET", "stop-writes-on-bgsave-error", "yes"],
        &["SET", "{k}a", "6"],
        &["CONFIG", "SET", "save", ""],
        &["SET", "{k}a", "7"],
        &["CONFIG", "SET", "save", "3600 1"],
        &["SET", "{k}a", "8"],
        &["GET", "{k}a"],
    ];
    let refused = steps
        .iter()
        .map(|s| p.both(s))
        .filter(|r| r.contains("MISCONF"))
        .count();
    assert!(refused >= 6, "only {refused} steps refused");
    // The way is clear again: the next save succeeds, and writes with it.
    for d in &blocked {
        std::fs::remove_dir_all(d).unwrap();
    }
    p.both(&["BGSAVE"]);
    p.wait_saved("ok");
    p.both(&["SET", "{k}a", "9"]);
    p.both(&["PING"]);
    assert!(p.both(&["GET", "{k}a"]).contains('9'));
}

/// redis-server and ember, sent the same commands.
struct Pair {
    r: redis::Connection,
    e: redis::Connection,
}

impl Pair {
    /// Sends `args` to both; their (equal) reply.
    fn both(&mut self, args: &[&str]) -> String {
        let (a, b) = (reply(&mut self.r, args), reply(&mut self.e, args));
        assert_eq!(b, a, "{args:?}: ember answered {b}, redis-server {a}");
        b
    }

    fn wait_saved(&mut self, status: &str) {
        for con in [&mut self.r, &mut self.e] {
            wait_until(&format!("rdb_last_bgsave_status:{status}"), T, || {
                Ok(
                    info_field(con, "persistence", "rdb_bgsave_in_progress") == "0"
                        && info_field(con, "persistence", "rdb_last_bgsave_status") == status,
                )
            })
            .unwrap();
        }
    }
}

/// A tmpfs mounted on a directory, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `mb` megabytes on `dir`, keeping the files in it.
    fn mount(dir: &Path, mb: u32) -> Tmpfs {
        let keep = tempfile::tempdir().unwrap();
        let copy = |from: &Path, to: &Path| {
            for f in std::fs::read_dir(from).unwrap() {
                let f = f.unwrap();
                if f.file_type().unwrap().is_file() {
                    std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
                }
            }
        };
        copy(dir, keep.path());
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "this test mounts a tmpfs to fill a disk: it runs as root"
        );
        copy(keep.path(), dir);
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A full disk under the append-only file (`everysec`): writes are refused with
/// Redis's `MISCONF Errors writing to the AOF file: No space left on device` (reads
/// still served), and accepted again once there is room, without a restart; every
/// acknowledged write is in the file after a kill -9.
#[test]
fn a_full_disk_refuses_writes_until_the_append_only_file_can_be_written() {
    let mut c = TestCluster::single_node(&[]);
    c.nodes[0].kill();
    let dir = c.specs[0].data_dir.clone();
    let _fs = Tmpfs::mount(&dir, 8);
    c.nodes[0].start_with_env(&[("EMBER_APPENDONLY", "yes")]);
    c.wait_all_info("cluster_state", "ok", T);
    let mut con = c.conn(0).unwrap();
    wait_until("the first rewrite", T, || {
        Ok(info_field(&mut con, "persistence", "aof_rewrites") != "0")
    })
    .unwrap();
    // Most of the room goes to a file that is removed later.
    let filler = dir.join("filler");
    std::fs::write(&filler, vec![7u8; 6 << 20]).unwrap();
    let value = "v".repeat(1024);
    let mut acked = Vec::new();
    let refusal = loop {
        assert!(acked.len() < 20_000, "8 MB never filled up");
        let k = format!("k{}", acked.len());
        match redis::cmd("SET").arg(&k).arg(&value).query::<()>(&mut con) {
            Ok(()) => acked.push(k),
            Err(e) => break e,
        }
    };
    assert_eq!(refusal.code(), Some("MISCONF"), "{refusal}");
    assert_eq!(
        refusal.detail(),
        Some("Errors writing to the AOF file: No space left on device")
    );
    assert!(acked.len() > 100, "refused after {} writes", acked.len());
    assert!(reply(&mut con, &["PING"]).contains("MISCONF"));
    let got: Option<String> = redis::cmd("GET").arg(&acked[0]).query(&mut con).unwrap();
    assert_eq!(got.as_deref(), Some(value.as_str()));
    assert_eq!(
        info_field(&mut con, "persistence", "aof_last_write_status"),
        "err"
    );
    // Room again: the file catches up by itself and writes are taken.
    std::fs::remove_file(&filler).unwrap();
    wait_until("writes accepted again", T, || {
        Ok(redis::cmd("SET")
            .arg("after")
            .arg(1)
            .query::<()>(&mut con)
            .is_ok())
    })
    .unwrap();
    acked.push("after".into());
    assert_eq!(
        info_field(&mut con, "persistence", "aof_last_write_status"),
        "ok"
    );
    // One write acknowledged with `always` covers every write before it.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendfsync")
        .arg("always")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("last")
        .arg(1)
        .query(&mut con)
        .unwrap();
    acked.push("last".into());
    c.nodes[0].kill();
    c.nodes[0].start_with_env(&[("EMBER_APPENDONLY", "yes")]);
    c.wait_all_info("cluster_state", "ok", T);
    let mut con = c.conn(0).unwrap();
    let mut pipe = redis::pipe();
    for k in &acked {
        pipe.cmd("EXISTS").arg(k);
    }
    let present: Vec<u8> = pipe.query(&mut con).unwrap();
    let lost: Vec<&String> = acked
        .iter()
        .zip(&present)
        .filter(|(_, p)| **p == 0)
        .map(|(k, _)| k)
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
}
