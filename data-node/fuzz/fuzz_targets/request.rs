//! Fuzzes the request path: arbitrary bytes, split into two reads at a point the input
//! chooses, are parsed as RESP/inline commands and every parsed command is executed
//! against an in-memory node that serves every slot, with the parser's bulk limit at its
//! default or at the largest value `CONFIG SET` accepts. Any panic is a bug; a protocol
//! error must end parsing (the server closes the connection there).
#![no_main]

use std::sync::Arc;

use bytes::BytesMut;
use ember_data_node::cluster::Cluster;
use ember_data_node::cmd::{execute, Client};
use ember_data_node::resp::{Limits, Parser};
use ember_data_node::{Config, ServerState};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Small limits keep single inputs from allocating hundreds of megabytes.
    let config = Config { proto_max_bulk_len: 1 << 20, ..Config::default() };
    let state = ServerState::new(Arc::new(Cluster::standalone()), config);
    let mut client = Client::new(state.clients.register("fuzz:1".into(), "fuzz:2".into()));
    // The parser also runs with the largest limit CONFIG SET accepts (i64::MAX), where a
    // bulk header alone must not make it allocate what the header says.
    let first = data.first().copied().unwrap_or(0);
    let limits = Limits {
        max_bulk_len: if first & 0x80 != 0 { i64::MAX as usize } else { 1 << 20 },
    };
    let split = usize::from(first & 0x7f) % (data.len() + 1);
    let mut parser = Parser::default();
    let mut buf = BytesMut::new();
    let mut args = Vec::new();
    for part in [&data[..split], &data[split..]] {
        buf.extend_from_slice(part);
        loop {
            args.clear();
            match parser.parse(&mut buf, &limits, &mut args) {
                Ok(true) => {
                    let reply = execute(&state, &mut client, &args);
                    let mut out = Vec::new();
                    reply.encode(&mut out, client.resp3);
                }
                Ok(false) => break,
                Err(_) => return,
            }
        }
    }
});
