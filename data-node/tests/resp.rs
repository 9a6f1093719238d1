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
        b"*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*0\r\n*0\r\n*0\r\n*0\r\n",
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
