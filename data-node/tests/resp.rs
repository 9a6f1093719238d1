//! Byte-level tests of the RESP engine: raw bytes in, exact bytes out, and the
//! connection closed after protocol errors.

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

async fn connect() -> TcpStream {
    let (addr, _state) = common::start().await;
    TcpStream::connect(addr).await.unwrap()
}

/// Reads exactly `expected.len()` bytes and compares them.
async fn expect(s: &mut TcpStream, expected: &[u8]) {
    let mut buf = vec![0u8; expected.len()];
    timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .expect("timed out waiting for reply")
        .expect("read failed");
    assert_eq!(
        String::from_utf8_lossy(&buf),
        String::from_utf8_lossy(expected),
        "unexpected reply"
    );
}

async fn send_expect(s: &mut TcpStream, input: &[u8], expected: &[u8]) {
    s.write_all(input).await.unwrap();
    expect(s, expected).await;
}

/// Asserts the server closes the connection without sending anything more.
async fn expect_closed(s: &mut TcpStream) {
    let mut buf = [0u8; 64];
    let n = timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("connection not closed")
        .unwrap_or(0);
    assert_eq!(
        n,
        0,
        "expected close, got {:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[tokio::test]
async fn pipelined_batch_is_answered_in_order() {
    let mut s = connect().await;
    send_expect(
        &mut s,
        b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n*2\r\n$3\r\nGET\r\n$1\r\nx\r\n",
        b"+PONG\r\n+OK\r\n$1\r\nv\r\n-ERR value is not an integer or out of range\r\n$-1\r\n",
    )
    .await;
}

#[tokio::test]
async fn inline_commands() {
    let mut s = connect().await;
    send_expect(
        &mut s,
        b"PING\r\n\r\nset a \"b c\"\r\nget a\nECHO 'x y'\r\n",
        b"+PONG\r\n+OK\r\n$3\r\nb c\r\n$3\r\nx y\r\n",
    )
    .await;
}

#[tokio::test]
async fn command_split_across_many_reads() {
    let mut s = connect().await;
    let cmd =
        b"*3\r\n$3\r\nSET\r\n$5\r\nhello\r\n$5\r\nworld\r\n*2\r\n$3\r\nGET\r\n$5\r\nhello\r\n";
    for b in cmd.iter() {
        s.write_all(&[*b]).await.unwrap();
        s.flush().await.unwrap();
    }
    expect(&mut s, b"+OK\r\n$5\r\nworld\r\n").await;
}

#[tokio::test]
async fn errors_have_redis_wording() {
    let mut s = connect().await;
    send_expect(
        &mut s,
        b"*1\r\n$3\r\nGET\r\n",
        b"-ERR wrong number of arguments for 'get' command\r\n",
    )
    .await;
    send_expect(
        &mut s,
        b"FOO a b\r\n",
        b"-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n",
    )
    .await;
    send_expect(
        &mut s,
        b"LPUSH l a\r\nGET l\r\n",
        b":1\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    )
    .await;
    send_expect(&mut s, b"SET k v XX NX\r\n", b"-ERR syntax error\r\n").await;
    send_expect(
        &mut s,
        b"SELECT 1\r\nSELECT 0\r\n",
        b"-ERR SELECT is not allowed in cluster mode\r\n+OK\r\n",
    )
    .await;
    send_expect(
        &mut s,
        b"REPLICAOF 127.0.0.1 6379\r\nSLAVEOF NO ONE\r\n",
        b"-ERR REPLICAOF not allowed in cluster mode: replicas are set with `emberctl join NODE --replica-of PRIMARY`, and promoted by the control plane\r\n-ERR SLAVEOF not allowed in cluster mode: replicas are set with `emberctl join NODE --replica-of PRIMARY`, and promoted by the control plane\r\n",
    )
    .await;
    send_expect(
        &mut s,
        b"MGET a b\r\n",
        b"-CROSSSLOT Keys in request don't hash to the same slot\r\n",
    )
    .await;
    send_expect(&mut s, b"MGET {a}1 {a}2\r\n", b"*2\r\n$-1\r\n$-1\r\n").await;
    send_expect(
        &mut s,
        b"READONLY\r\nREADWRITE\r\nASKING\r\n",
        b"+OK\r\n+OK\r\n+OK\r\n",
    )
    .await;
}

#[tokio::test]
async fn hello_3_switches_to_resp3() {
    let mut s = connect().await;
    s.write_all(b"HELLO 3\r\n").await.unwrap();
    let mut head = vec![0u8; 4];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"%7\r\n");
    // The rest of the map: read up to the end of the `modules` entry.
    let mut rest = Vec::new();
    while !rest.ends_with(b"$7\r\nmodules\r\n*0\r\n") {
        let mut b = [0u8; 1];
        timeout(Duration::from_secs(5), s.read_exact(&mut b))
            .await
            .unwrap()
            .unwrap();
        rest.push(b[0]);
    }
    let text = String::from_utf8_lossy(&rest);
    assert!(text.starts_with("$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:"), "{text}");
    assert!(
        text.contains("$4\r\nmode\r\n$7\r\ncluster\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"),
        "{text}"
    );
    send_expect(
        &mut s,
        b"GET nokey\r\nHSET h f v\r\nHGETALL h\r\nZADD z 1.5 m\r\nZSCORE z m\r\nSMEMBERS nokey\r\nLPOP nokey 2\r\n",
        b"_\r\n:1\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n:1\r\n,1.5\r\n~0\r\n_\r\n",
    )
    .await;
    send_expect(
        &mut s,
        b"HELLO 4\r\n",
        b"-NOPROTO unsupported protocol version\r\n",
    )
    .await;
    // Back to RESP2.
    s.write_all(b"HELLO 2\r\n").await.unwrap();
    let mut head = vec![0u8; 5];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"*14\r\n");
}

#[tokio::test]
async fn resp2_degrades_resp3_types() {
    let mut s = connect().await;
    send_expect(
        &mut s,
        b"HSET h f v\r\nHGETALL h\r\nZADD z 1.1 m\r\nZSCORE z m\r\nLPOP nokey 2\r\nZRANGE z 0 -1 WITHSCORES\r\n",
        b":1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n:1\r\n$18\r\n1.1000000000000001\r\n*-1\r\n*2\r\n$1\r\nm\r\n$18\r\n1.1000000000000001\r\n",
    )
    .await;
}

#[tokio::test]
async fn invalid_multibulk_length_closes() {
    let mut s = connect().await;
    send_expect(
        &mut s,
        b"PING\r\n*abc\r\n",
        b"+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n",
    )
    .await;
    expect_closed(&mut s).await;
}

#[tokio::test]
async fn negative_bulk_length_closes() {
    let mut s = connect().await;
    send_expect(
        &mut s,
        b"*1\r\n$-5\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    )
    .await;
    expect_closed(&mut s).await;
}

#[tokio::test]
async fn bulk_length_over_the_limit_closes() {
    let mut s = connect().await;
    send_expect(
        &mut s,
        b"*1\r\n$536870913\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    )
    .await;
    expect_closed(&mut s).await;
}

#[tokio::test]
async fn configured_bulk_limit_applies() {
    let mut s = connect().await;
    send_expect(&mut s, b"CONFIG SET proto-max-bulk-len 1mb\r\n", b"+OK\r\n").await;
    send_expect(
        &mut s,
        b"*1\r\n$1048577\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    )
    .await;
    expect_closed(&mut s).await;
}

#[tokio::test]
async fn multibulk_count_over_the_limit_closes() {
    let mut s = connect().await;
    send_expect(
        &mut s,
        b"*2147483648\r\n",
        b"-ERR Protocol error: invalid multibulk length\r\n",
    )
    .await;
    expect_closed(&mut s).await;
}

#[tokio::test]
async fn expected_dollar_closes() {
    let mut s = connect().await;
    send_expect(
        &mut s,
        b"*1\r\nfoo\r\n",
        b"-ERR Protocol error: expected '$', got 'f'\r\n",
    )
    .await;
    expect_closed(&mut s).await;
}

#[tokio::test]
async fn unbalanced_quotes_close() {
    let mut s = connect().await;
    send_expect(
        &mut s,
        b"SET a \"b\r\n",
        b"-ERR Protocol error: unbalanced quotes in request\r\n",
    )
    .await;
    expect_closed(&mut s).await;
}

#[tokio::test]
async fn huge_unterminated_inline_line_closes() {
    let mut s = connect().await;
    let line = vec![b'a'; 70 * 1024];
    let _ = s.write_all(&line).await;
    expect(&mut s, b"-ERR Protocol error: too big inline request\r\n").await;
    expect_closed(&mut s).await;
}

#[tokio::test]
async fn quit_closes_after_ok() {
    let mut s = connect().await;
    send_expect(&mut s, b"QUIT\r\nPING\r\n", b"+OK\r\n").await;
    expect_closed(&mut s).await;
}

#[tokio::test]
async fn transactions() {
    let mut s = connect().await;
    send_expect(
        &mut s,
        b"MULTI\r\nSET {t}a 1\r\nINCR {t}a\r\nEXEC\r\n",
        b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n:2\r\n",
    )
    .await;
    send_expect(
        &mut s,
        b"MULTI\r\nSET a 1\r\nSET b 1\r\nEXEC\r\n",
        b"+OK\r\n+QUEUED\r\n-CROSSSLOT Keys in request don't hash to the same slot\r\n-EXECABORT Transaction discarded because of previous errors.\r\n",
    )
    .await;
    send_expect(
        &mut s,
        b"MULTI\r\nGET\r\nEXEC\r\n",
        b"+OK\r\n-ERR wrong number of arguments for 'get' command\r\n-EXECABORT Transaction discarded because of previous errors.\r\n",
    )
    .await;
    send_expect(
        &mut s,
        b"EXEC\r\nDISCARD\r\n",
        b"-ERR EXEC without MULTI\r\n-ERR DISCARD without MULTI\r\n",
    )
    .await;
    // WATCH: a write to the watched key aborts EXEC with a null array.
    send_expect(
        &mut s,
        b"WATCH w\r\nSET w 1\r\nMULTI\r\nGET w\r\nEXEC\r\n",
        b"+OK\r\n+OK\r\n+OK\r\n+QUEUED\r\n*-1\r\n",
    )
    .await;
    send_expect(
        &mut s,
        b"WATCH w\r\nMULTI\r\nGET w\r\nEXEC\r\n",
        b"+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n$1\r\n1\r\n",
    )
    .await;
}

#[tokio::test]
async fn a_stuck_client_does_not_stall_others() {
    let (addr, _state) = common::start().await;
    // This client sends half a command and never reads.
    let mut stuck = TcpStream::connect(addr).await.unwrap();
    stuck
        .write_all(b"*2\r\n$3\r\nGET\r\n$100\r\nab")
        .await
        .unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    send_expect(&mut s, b"SET k v\r\nGET k\r\n", b"+OK\r\n$1\r\nv\r\n").await;
}

#[tokio::test]
async fn keyspace_counts_and_expiry() {
    let (addr, state) = common::start().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    send_expect(
        &mut s,
        b"MSET {x}1 a {x}2 b\r\nDBSIZE\r\nPEXPIRE {x}1 1\r\n",
        b"+OK\r\n:2\r\n:1\r\n",
    )
    .await;
    let slot = ember_core::key_slot(b"x");
    assert_eq!(state.db.count_in_slot(slot), 2);
    tokio::time::sleep(Duration::from_millis(20)).await;
    send_expect(&mut s, b"GET {x}1\r\nDBSIZE\r\n", b"$-1\r\n:1\r\n").await;
    assert_eq!(
        state.db.keys_in_slot(slot, 10),
        vec![bytes::Bytes::from_static(b"{x}2")]
    );
    assert_eq!(state.db.drop_slot(slot), 1);
    send_expect(&mut s, b"DBSIZE\r\n", b":0\r\n").await;
}

/// Reads one reply's worth of bytes (simple heuristic: until no more data for 200 ms).
async fn read_some(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(Ok(n)) = timeout(Duration::from_millis(200), s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn server_and_client_commands() {
    let mut s = connect().await;
    send_expect(
        &mut s,
        b"CLIENT SETNAME app\r\nCLIENT GETNAME\r\n",
        b"+OK\r\n$3\r\napp\r\n",
    )
    .await;
    send_expect(
        &mut s,
        b"CLIENT SETNAME \"a b\"\r\n",
        b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
    )
    .await;
    send_expect(&mut s, b"CLIENT SETINFO LIB-NAME redis-rs\r\n", b"+OK\r\n").await;
    send_expect(
        &mut s,
        b"CLIENT NOPE\r\n",
        b"-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n",
    )
    .await;
    s.write_all(b"CLIENT LIST\r\n").await.unwrap();
    let list = read_some(&mut s).await;
    assert!(
        list.contains(" name=app ") && list.contains("lib-name=redis-rs"),
        "{list}"
    );
    send_expect(
        &mut s,
        b"CONFIG GET proto-max-bulk-len\r\n",
        b"*2\r\n$18\r\nproto-max-bulk-len\r\n$9\r\n536870912\r\n",
    )
    .await;
    send_expect(
        &mut s,
        b"CONFIG SET nosuch 1\r\n",
        b"-ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'\r\n",
    )
    .await;
    send_expect(
        &mut s,
        b"SET k 1234567890\r\nMEMORY USAGE nokey\r\n",
        b"+OK\r\n$-1\r\n",
    )
    .await;
    s.write_all(b"MEMORY USAGE k\r\n").await.unwrap();
    assert!(read_some(&mut s).await.starts_with(':'));
    s.write_all(b"INFO\r\n").await.unwrap();
    let info = read_some(&mut s).await;
    for needle in [
        "# Server\r\n",
        "redis_version:",
        "# Clients\r\nconnected_clients:1\r\n",
        "# Memory\r\nused_memory:",
        "# Stats\r\n",
        "# Cluster\r\ncluster_enabled:1",
        "# Keyspace\r\ndb0:keys=1,expires=0",
    ] {
        assert!(info.contains(needle), "INFO lacks {needle:?}: {info}");
    }
    s.write_all(b"INFO memory\r\n").await.unwrap();
    let mem = read_some(&mut s).await;
    assert!(
        mem.contains("used_memory:") && !mem.contains("# Server"),
        "{mem}"
    );
    s.write_all(b"COMMAND COUNT\r\n").await.unwrap();
    assert!(read_some(&mut s).await.starts_with(':'));
    send_expect(
        &mut s,
        b"COMMAND INFO get\r\n",
        // Redis 7.0's bytes, key specification included.
        b"*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n",
    )
    .await;
    s.write_all(b"TIME\r\n").await.unwrap();
    assert!(read_some(&mut s).await.starts_with("*2\r\n$"));
    send_expect(&mut s, b"FLUSHALL\r\nDBSIZE\r\n", b"+OK\r\n:0\r\n").await;
}

#[tokio::test]
async fn scan_walks_every_slot() {
    let mut s = connect().await;
    let mut cmd = String::new();
    for i in 0..300 {
        cmd.push_str(&format!("SET key{i} v\r\n"));
    }
    s.write_all(cmd.as_bytes()).await.unwrap();
    expect(&mut s, &b"+OK\r\n".repeat(300)).await;
    let mut seen = std::collections::HashSet::new();
    let mut cursor = "0".to_string();
    for _ in 0..10_000 {
        s.write_all(format!("SCAN {cursor} COUNT 60\r\n").as_bytes())
            .await
            .unwrap();
        let r = read_some(&mut s).await;
        let lines: Vec<&str> = r.split("\r\n").collect();
        cursor = lines[2].to_string();
        for l in lines[4..].iter().filter(|l| l.starts_with("key")) {
            seen.insert(l.to_string());
        }
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(cursor, "0");
    assert_eq!(seen.len(), 300);
}

#[tokio::test]
async fn large_values_arrive_in_many_reads() {
    let mut s = connect().await;
    let value = vec![b'v'; 3 * 1024 * 1024 + 7];
    let mut cmd = format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n", value.len()).into_bytes();
    cmd.extend_from_slice(&value);
    cmd.extend_from_slice(b"\r\nSTRLEN big\r\n");
    for chunk in cmd.chunks(100_000) {
        s.write_all(chunk).await.unwrap();
    }
    expect(&mut s, format!("+OK\r\n:{}\r\n", value.len()).as_bytes()).await;
}

#[tokio::test]
async fn query_buffer_limit_closes_the_connection() {
    let mut s = connect().await;
    send_expect(
        &mut s,
        b"CONFIG SET client-query-buffer-limit 1mb\r\n",
        b"+OK\r\n",
    )
    .await;
    // A 10 MB bulk (allowed by proto-max-bulk-len) of which 2 MB arrive: over the limit.
    let _ = s.write_all(b"*2\r\n$3\r\nGET\r\n$10485760\r\n").await;
    let _ = s.write_all(&vec![b'x'; 2 * 1024 * 1024]).await;
    expect_closed(&mut s).await;
}

#[tokio::test]
async fn random_garbage_never_takes_the_server_down() {
    use rand::{Rng, SeedableRng};
    let (addr, _state) = common::start().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let pieces: [&[u8]; 12] = [
        b"*",
        b"$",
        b"\r\n",
        b"3",
        b"-1",
        b"SET",
        b"GET",
        b"k",
        b"\"",
        b" ",
        b"99999999999",
        b"\0",
    ];
    for _ in 0..200 {
        let mut input = Vec::new();
        for _ in 0..rng.random_range(1..40) {
            if rng.random_bool(0.3) {
                input.push(rng.random());
            } else {
                input.extend_from_slice(pieces[rng.random_range(0..pieces.len())]);
            }
        }
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(&input).await;
        let mut buf = [0u8; 4096];
        let _ = timeout(Duration::from_millis(20), s.read(&mut buf)).await;
    }
    let mut s = TcpStream::connect(addr).await.unwrap();
    send_expect(&mut s, b"PING\r\n", b"+PONG\r\n").await;
}

#[tokio::test]
async fn connections_on_every_thread_share_the_keyspace() {
    let config = ember_data_node::Config {
        io_threads: 3,
        ..Default::default()
    };
    let (addr, state) = common::start_with(config).await;
    let mut admin = TcpStream::connect(addr).await.unwrap();
    send_expect(
        &mut admin,
        b"CONFIG GET io-threads\r\n",
        b"*2\r\n$10\r\nio-threads\r\n$1\r\n3\r\n",
    )
    .await;
    // 12 connections (4 per thread), each 100 pipelined INCRs of one shared counter and
    // one key of its own, all at once.
    let mut clients = Vec::new();
    for c in 0..12 {
        clients.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let mut batch = Vec::new();
            for _ in 0..100 {
                batch.extend_from_slice(b"INCR counter\r\n");
                batch.extend_from_slice(format!("INCR own:{c}\r\n").as_bytes());
            }
            s.write_all(&batch).await.unwrap();
            // 200 integer replies; the last one of the connection's own key is 100.
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while got.iter().filter(|&&b| b == b'\n').count() < 200 {
                let n = timeout(Duration::from_secs(10), s.read(&mut buf))
                    .await
                    .expect("replies in time")
                    .unwrap();
                assert!(n > 0, "connection {c} closed early");
                got.extend_from_slice(&buf[..n]);
            }
            assert!(got.ends_with(b":100\r\n"), "connection {c}");
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    send_expect(&mut admin, b"GET counter\r\n", b"$4\r\n1200\r\n").await;
    assert_eq!(state.db.dbsize(), 13);
}

/// Reads one bulk-string reply (`$N\r\n...\r\n`, or RESP3 verbatim `=N\r\ntxt:...`)
/// and returns its text.
async fn read_bulk(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n") {
        let mut b = [0u8; 1];
        timeout(Duration::from_secs(5), s.read_exact(&mut b))
            .await
            .expect("timed out waiting for a bulk reply")
            .unwrap();
        head.push(b[0]);
    }
    let text = String::from_utf8_lossy(&head);
    assert!(text.starts_with('$') || text.starts_with('='), "{text}");
    let n: usize = text[1..text.len() - 2].parse().unwrap();
    let mut body = vec![0u8; n + 2];
    timeout(Duration::from_secs(5), s.read_exact(&mut body))
        .await
        .unwrap()
        .unwrap();
    body.truncate(n);
    String::from_utf8_lossy(&body).into_owned()
}

/// `CLIENT LIST` (from `s`) until `f` accepts it, polling for at most 5 s.
async fn client_list_until(s: &mut TcpStream, what: &str, f: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        s.write_all(b"CLIENT LIST\r\n").await.unwrap();
        let list = read_bulk(s).await;
        if f(&list) {
            return list;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {list}");
        tokio::task::yield_now().await;
    }
}

/// The `field=value` of the `CLIENT LIST` line of client `id`.
fn client_field<'a>(list: &'a str, id: &str, field: &str) -> Option<&'a str> {
    let line = list.lines().find(|l| l.starts_with(&format!("id={id} ")))?;
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(field)?.strip_prefix('='))
}

/// A glob pattern that backtracks exponentially in a naive matcher (`a*a*...*b` against a
/// 40-character key) is answered at once, and the node keeps serving others meanwhile.
///
/// Synchronous, with the node on its own runtime: a matcher that spins holds a slot's
/// lock, and whatever runtime then waits for that lock must not be the test's.
#[test]
fn keys_with_a_pathological_pattern_answers_quickly() {
    use std::io::{Read, Write};
    let addr = common::start_in_thread();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    // Liveness deadline, not a measurement: a naive matcher needs hours here.
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let read = |s: &mut std::net::TcpStream, n: usize| {
        let mut buf = vec![0u8; n];
        s.read_exact(&mut buf)
            .expect("no answer within 2 s to a pathological pattern");
        String::from_utf8(buf).unwrap()
    };
    let key = "a".repeat(40);
    s.write_all(format!("SET {key} v\r\n").as_bytes()).unwrap();
    assert_eq!(read(&mut s, 5), "+OK\r\n");
    let pattern = format!("{}b", "a*".repeat(30));
    s.write_all(format!("KEYS {pattern}\r\nSCAN 0 MATCH {pattern} COUNT 1000\r\n").as_bytes())
        .unwrap();
    assert_eq!(read(&mut s, 4), "*0\r\n");
    assert_eq!(read(&mut s, 15), "*2\r\n$1\r\n0\r\n*0\r\n");
    let mut other = std::net::TcpStream::connect(addr).unwrap();
    other
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    other.write_all(b"PING\r\n").unwrap();
    assert_eq!(read(&mut other, 7), "+PONG\r\n");
}

/// `proto-max-bulk-len` takes Redis's bounds and errors; at its largest value a bulk
/// header of that size neither panics the connection nor makes the node allocate it: the
/// connection waits for the data (CLIENT LIST shows the header buffered).
#[tokio::test]
async fn bulk_headers_at_the_largest_bulk_limit() {
    let (addr, _state) = common::start().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    send_expect(
        &mut s,
        b"CONFIG SET proto-max-bulk-len 18446744073709551615\r\n",
        b"-ERR CONFIG SET failed (possibly related to argument 'proto-max-bulk-len') - argument must be between 1048576 and 9223372036854775807 inclusive\r\n",
    )
    .await;
    send_expect(
        &mut s,
        b"CONFIG SET proto-max-bulk-len 9223372036854775807\r\nCLIENT ID\r\n",
        b"+OK\r\n:",
    )
    .await;
    let mut id = Vec::new();
    while !id.ends_with(b"\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        id.push(b[0]);
    }
    let id = String::from_utf8_lossy(&id[..id.len() - 2]).into_owned();
    for len in ["9223372036854775807", "1099511627776"] {
        let header = format!("*2\r\n$3\r\nGET\r\n${len}\r\nab");
        let mut big = TcpStream::connect(addr).await.unwrap();
        send_expect(&mut big, b"CLIENT ID\r\n", b":").await;
        let mut big_id = Vec::new();
        while !big_id.ends_with(b"\r\n") {
            let mut b = [0u8; 1];
            big.read_exact(&mut b).await.unwrap();
            big_id.push(b[0]);
        }
        let big_id = String::from_utf8_lossy(&big_id[..big_id.len() - 2]).into_owned();
        big.write_all(header.as_bytes()).await.unwrap();
        let want = header.len().to_string();
        let list = client_list_until(&mut s, "the big bulk's header buffered", |l| {
            client_field(l, &big_id, "qbuf") == Some(want.as_str())
        })
        .await;
        assert_eq!(client_field(&list, &big_id, "cmd"), Some("client|id"));
        assert_eq!(client_field(&list, &id, "cmd"), Some("client|list"));
        drop(big);
    }
    send_expect(&mut s, b"PING\r\n", b"+PONG\r\n").await;
}

/// `CLIENT LIST` reports each connection's file descriptor, last command (named as
/// Redis names it), unparsed input and transaction state.
#[tokio::test]
async fn client_list_reports_real_values() {
    let (addr, _state) = common::start().await;
    let mut a = TcpStream::connect(addr).await.unwrap();
    let mut b = TcpStream::connect(addr).await.unwrap();
    send_expect(&mut a, b"CLIENT ID\r\n", b":1\r\n").await;
    send_expect(
        &mut b,
        b"CLIENT ID\r\nMULTI\r\nGET k\r\n",
        b":2\r\n+OK\r\n+QUEUED\r\n",
    )
    .await;
    // An incomplete command stays in b's query buffer.
    b.write_all(b"*2\r\n$3\r\nGET\r\n$1\r\n").await.unwrap();
    let list = client_list_until(&mut a, "b's partial command", |l| {
        client_field(l, "2", "qbuf") == Some("17")
    })
    .await;
    let fd = |id| {
        client_field(&list, id, "fd")
            .unwrap()
            .parse::<i32>()
            .unwrap()
    };
    assert!(fd("1") > 2 && fd("2") > 2 && fd("1") != fd("2"), "{list}");
    assert_eq!(client_field(&list, "1", "cmd"), Some("client|list"));
    assert_eq!(client_field(&list, "2", "cmd"), Some("get"));
    assert_eq!(client_field(&list, "2", "multi"), Some("1"));
    assert_eq!(client_field(&list, "2", "flags"), Some("x"));
    assert_eq!(client_field(&list, "1", "multi"), Some("-1"));
    assert_eq!(client_field(&list, "1", "flags"), Some("N"));
    let qfree: usize = client_field(&list, "2", "qbuf-free")
        .unwrap()
        .parse()
        .unwrap();
    assert!(qfree > 0, "{list}");
}

/// `INFO cpu` has Redis's fields, from getrusage.
#[tokio::test]
async fn info_has_a_cpu_section() {
    let mut s = connect().await;
    s.write_all(b"INFO cpu\r\n").await.unwrap();
    let info = read_bulk(&mut s).await;
    assert!(info.starts_with("# CPU\r\n"), "{info}");
    let mut total = 0.0;
    for field in [
        "used_cpu_sys",
        "used_cpu_user",
        "used_cpu_sys_children",
        "used_cpu_user_children",
        "used_cpu_sys_main_thread",
        "used_cpu_user_main_thread",
    ] {
        let v = info
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .unwrap_or_else(|| panic!("no {field}: {info}"));
        let (secs, micros) = v.split_once('.').expect("seconds.micros");
        assert_eq!(micros.len(), 6, "{field}:{v}");
        total += format!("{secs}.{micros}").parse::<f64>().unwrap();
    }
    // The process has run for a while: not all zero.
    assert!(total > 0.0, "{info}");
    s.write_all(b"INFO\r\n").await.unwrap();
    let all = read_bulk(&mut s).await;
    let (stats, cpu, cluster) = (
        all.find("# Stats").unwrap(),
        all.find("# CPU").unwrap(),
        all.find("# Cluster").unwrap(),
    );
    assert!(
        stats < cpu && cpu < cluster,
        "sections in Redis's order: {all}"
    );
}

/// RESP3 replies `HRANDFIELD ... WITHVALUES` and `ZRANDMEMBER ... WITHSCORES` as
/// `[field, value]` pairs (RESP2 flat), and huge counts are refused at once.
#[tokio::test]
async fn random_pairs_and_counts() {
    let mut s = connect().await;
    send_expect(&mut s, b"HSET h f v\r\nZADD z 1.5 m\r\n", b":1\r\n:1\r\n").await;
    let pairs = b"HRANDFIELD h 1 WITHVALUES\r\nZRANDMEMBER z 1 WITHSCORES\r\nHRANDFIELD h -1 WITHVALUES\r\n";
    send_expect(
        &mut s,
        pairs,
        b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n*2\r\n$1\r\nm\r\n$3\r\n1.5\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
    )
    .await;
    s.write_all(b"HELLO 3\r\n").await.unwrap();
    let _ = read_some(&mut s).await;
    send_expect(
        &mut s,
        pairs,
        b"*1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n*1\r\n*2\r\n$1\r\nm\r\n,1.5\r\n*1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
    )
    .await;
    send_expect(
        &mut s,
        b"HRANDFIELD h -9223372036854770000 WITHVALUES\r\nSRANDMEMBER h -9223372036854775808\r\nZRANDMEMBER z -9223372036854775807\r\n",
        b"-ERR value is out of range\r\n-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807\r\n-ERR value is out of range, value must between -1048576 and 9223372036854775807\r\n",
    )
    .await;
}

/// A write that changes nothing (`SMOVE` of an absent member) leaves a `WATCH` alone.
#[tokio::test]
async fn noop_smove_keeps_the_watch() {
    let mut s = connect().await;
    send_expect(
        &mut s,
        b"SADD {t}src m\r\nWATCH {t}dst\r\nSMOVE {t}src {t}dst absent\r\nMULTI\r\nGET {t}dst\r\nEXEC\r\n",
        b":1\r\n+OK\r\n:0\r\n+OK\r\n+QUEUED\r\n*1\r\n$-1\r\n",
    )
    .await;
    send_expect(
        &mut s,
        b"WATCH {t}dst\r\nSMOVE {t}src {t}dst m\r\nMULTI\r\nGET {t}dst\r\nEXEC\r\n",
        b"+OK\r\n:1\r\n+OK\r\n+QUEUED\r\n*-1\r\n",
    )
    .await;
}
