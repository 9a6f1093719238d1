//! One client connection: reads, turns of command execution, writes, and the limits
//! that keep one client from hurting the others.
//!
//! - **Turns.** Buffered commands run in turns of at most [`TURN_COMMANDS`] commands or
//!   [`TURN_REPLY_BYTES`] of replies built (a turn always runs at least one command).
//!   After a turn the connection writes what it can and yields, so the other
//!   connections of its thread run before its next turn: a client pipelining big GETs
//!   delays another client's PING by about one turn, not by its whole pipeline.
//! - **Backpressure.** While the replies not yet written reach [`OUTPUT_HIGH_WATER`]
//!   (or the client class's output buffer limit, when one is set and larger), the
//!   connection neither executes nor reads: it only waits for its socket to take
//!   bytes. A client that does not read its replies thus costs at most about that plus
//!   one reply, and its requests stay in the kernel (TCP flow control pushes back).
//! - **`client-output-buffer-limit`** (Redis's semantics): once the unsent replies reach
//!   the hard limit, or stay at or over the soft limit for longer than its seconds, the
//!   client is disconnected without its pending replies, logged, and counted in
//!   `INFO stats` (`client_output_buffer_limit_disconnections`). With a limit set, the
//!   backpressure bound is at least that limit, so a client that never reads is cut off
//!   as in Redis; with the default `normal 0 0 0` the backpressure bounds it.
//! - **Idle memory.** The read and write buffers come from the thread's pool
//!   ([`super::buffers`]) when needed and go back once empty.
//!
//! Replies are written with non-blocking writes. Before the first write of a turn's
//! replies the connection yields once, so that the thread's other ready connections
//! execute first and the replies leave together (see ARCHITECTURE.md, "Threads").

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::accept::Admitted;
use super::{buffers, SPIN};
use crate::cmd::{execute, Client};
use crate::config::ClassLimit;
use crate::resp::{Limits, Parser, Reply};
use crate::state::ServerState;

/// Most commands one turn executes.
pub const TURN_COMMANDS: usize = 256;
/// A turn ends once it has built this many bytes of replies.
pub const TURN_REPLY_BYTES: usize = 64 * 1024;
/// No command runs and nothing is read while this many reply bytes are unsent (or the
/// class's output buffer limit, when larger).
pub const OUTPUT_HIGH_WATER: usize = 256 * 1024;
/// A read asks for at least this much room.
const READ_ROOM: usize = 4096;

pub async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<ServerState>,
    stop: watch::Receiver<bool>,
    admitted: Admitted,
) {
    let _ = stream.set_nodelay(true);
    let laddr = stream
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let info = state.clients.register(peer.to_string(), laddr);
    info.fd
        .store(std::os::fd::AsRawFd::as_raw_fd(&stream), Ordering::Relaxed);
    state.stats.connections.fetch_add(1, Ordering::Relaxed);
    let id = info.id;
    let mut conn = Conn {
        stream,
        state: &state,
        client: Client::new(info),
        input: BytesMut::new(),
        parser: Parser::default(),
        args: Vec::new(),
        out: Vec::new(),
        sent: 0,
        soft_since: None,
        more_input: false,
        closing: false,
        stop: stop.clone(),
        scripts: std::collections::VecDeque::new(),
    };
    match conn.serve(stop).await {
        Ok(()) => {}
        Err(e) => tracing::debug!(%peer, error = %e, "connection ended"),
    }
    conn.release();
    if let Some(mut subs) = conn.client.pubsub.take() {
        subs.leave_all(&state.pubsub, id);
    }
    state.tracker.disable(id);
    state.clients.unregister(id);
    drop(admitted);
}

/// Why a connection is closed by the node.
enum Verdict {
    /// Within its limits.
    Fine,
    /// Over a `client-output-buffer-limit`: close without writing the rest.
    OverOutputLimit { unsent: usize, soft: bool },
}

struct Conn<'a> {
    stream: TcpStream,
    state: &'a ServerState,
    client: Client,
    /// Unparsed input; no allocation while there is none.
    input: BytesMut,
    parser: Parser,
    args: Vec<Bytes>,
    /// Encoded replies; `out[sent..]` is not written yet. No allocation while empty.
    out: Vec<u8>,
    sent: usize,
    /// Since when the unsent replies are at or over the soft limit.
    soft_since: Option<Instant>,
    /// The input may hold complete commands not run yet.
    more_input: bool,
    /// QUIT or a protocol error: write what is pending, then close.
    closing: bool,
    /// The node is shutting down.
    stop: watch::Receiver<bool>,
    /// Scripts of this turn handed to the script thread, replies not written yet, in
    /// order: consecutive `EVAL`s of a pipeline go to the script thread together.
    /// Each with whether its reply is suppressed (`CLIENT REPLY OFF|SKIP`).
    scripts: std::collections::VecDeque<(crate::cmd::scripting::Pending, bool)>,
}

impl Conn<'_> {
    fn unsent(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Unsent bytes at which the connection stops executing and reading.
    fn high_water(limit: &ClassLimit) -> usize {
        let limit = limit.hard.max(limit.soft);
        OUTPUT_HIGH_WATER.max(usize::try_from(limit).unwrap_or(usize::MAX))
    }

    async fn serve(&mut self, mut stop: watch::Receiver<bool>) -> std::io::Result<()> {
        loop {
            let limit = self.state.config.output_limit(self.client.class());
            let high_water = Self::high_water(&limit);
            let mut built = false;
            if self.more_input && !self.closing && self.unsent() < high_water {
                let before = self.out.len();
                self.turn(&limit, high_water).await;
                built = self.out.len() > before;
            }
            if let Verdict::OverOutputLimit { unsent, soft } = self.check(&limit) {
                return self.disconnect_over_limit(&limit, unsent, soft);
            }
            if self.unsent() > 0 {
                if built {
                    // Let the thread's other ready connections run first, so that the
                    // replies go out together (one wake-up of a client per round).
                    tokio::task::yield_now().await;
                }
                self.durable().await;
                self.write_some()?;
                if let Verdict::OverOutputLimit { unsent, soft } = self.check(&limit) {
                    return self.disconnect_over_limit(&limit, unsent, soft);
                }
            }
            self.client
                .info
                .omem
                .store(self.unsent(), Ordering::Relaxed);
            if self.closing && self.unsent() == 0 {
                let _ = self.stream.shutdown().await;
                return Ok(());
            }
            if self.input.len() > self.state.config.client_query_buffer_limit() {
                self.state
                    .stats
                    .query_limit_disconnections
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    client = self.client.id,
                    addr = %self.client.info.addr,
                    "closing client that exceeded client-query-buffer-limit"
                );
                return Ok(());
            }
            self.release();
            let can_run = !self.closing && self.unsent() < high_water;
            if self.more_input && can_run {
                // The last turn ended on a bound: the others first.
                tokio::task::yield_now().await;
                continue;
            }
            let want_read = can_run;
            let want_write = self.unsent() > 0;
            let deadline = self
                .soft_since
                .filter(|_| limit.soft > 0)
                .map(|since| since + limit.soft_for() + std::time::Duration::from_millis(1));
            let inbox = self.client.pubsub.as_mut().map(|s| &mut s.inbox);
            tokio::select! {
                ready = self.stream.readable(), if want_read => {
                    ready?;
                    if !self.read()? {
                        return Ok(());
                    }
                }
                ready = self.stream.writable(), if want_write => ready?,
                Some(push) = async {
                    match inbox {
                        Some(inbox) => inbox.recv().await,
                        None => std::future::pending().await,
                    }
                } => self.take_pushes(push),
                _ = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d.into()).await,
                        None => std::future::pending().await,
                    }
                } => {}
                _ = stop.changed() => return Ok(()),
                _ = self.client.info.kill.notified() => return Ok(()),
            }
        }
    }

    /// Runs buffered commands until the input has no complete command, or a bound of the
    /// turn is reached, or the connection is to be closed.
    async fn turn(&mut self, limit: &ClassLimit, high_water: usize) {
        let limits = Limits {
            max_bulk_len: self.state.config.proto_max_bulk_len(),
        };
        let mut start = self.out.len();
        let mut executed = 0u64;
        if self.out.capacity() == 0 {
            self.out = buffers::take_write();
        }
        while executed < TURN_COMMANDS as u64
            && self.out.len() - start < TURN_REPLY_BYTES
            && self.unsent() < high_water
        {
            self.args.clear();
            match self.parser.parse(&mut self.input, &limits, &mut self.args) {
                Ok(true) => {
                    if !self.scripts.is_empty() && !crate::cmd::scripting::is_script(&self.args[0])
                    {
                        // What follows the scripts may read what they wrote.
                        self.finish_scripts().await;
                    }
                    executed += 1;
                    if !self.client.primary_link && self.wait_unpaused().await {
                        // The replies before were written out meanwhile.
                        start = self.out.len();
                    }
                    self.client.scripts_queued = !self.scripts.is_empty();
                    let mut reply = execute(self.state, &mut self.client, &self.args);
                    if self.client.caching.is_some()
                        && self.client.multi.is_none()
                        && !self.args[0].eq_ignore_ascii_case(b"client")
                    {
                        // `CLIENT CACHING` speaks for the next command (or transaction)
                        // other than a `CLIENT` one, as in Redis.
                        self.client.caching = None;
                    }
                    while let Some(slot) = self.client.held_on.take() {
                        // A migration's handoff holds writes to this slot: wait for the
                        // control plane's decision, then run it again (it re-routes, so
                        // after a commit it answers MOVED). This turn's writes go to the
                        // replicas first.
                        self.state.repl.wake();
                        self.state.db.wait_released(slot).await;
                        reply = execute(self.state, &mut self.client, &self.args);
                    }
                    if let Some(w) = self.client.wait.take() {
                        // This turn's writes must reach the replicas before we wait for them.
                        self.state.repl.wake();
                        let n = self
                            .state
                            .followers
                            .wait(w.replicas, w.offset, w.timeout)
                            .await;
                        reply = Reply::Integer(n as i64);
                    }
                    while self.client.behind_script {
                        // A script holds what this command needs: after it, again.
                        self.client.behind_script = false;
                        self.state.repl.wake();
                        self.state.scripts.wait_done().await;
                        reply = execute(self.state, &mut self.client, &self.args);
                    }
                    if let Some(pending) = self.client.script.take() {
                        // This turn's writes go to the replicas before the script's; the
                        // reply is written once it arrives, after the scripts before it.
                        self.state.repl.wake();
                        let suppressed = self.client.reply_suppressed();
                        self.scripts.push_back((pending, suppressed));
                        continue;
                    }
                    if let Some(b) = self.client.block.take() {
                        // Blocked on keys: this turn's writes go to the replicas first.
                        self.state.repl.wake();
                        match self.wait_blocked(b).await {
                            Some(r) => reply = r,
                            None => {
                                self.closing = true;
                                break;
                            }
                        }
                        self.client.woff = self.state.repl.end();
                    }
                    if !self.client.reply_suppressed() {
                        reply.encode(&mut self.out, self.client.resp3);
                    }
                    if self.client.close {
                        self.closing = true;
                        break;
                    }
                    if matches!(self.check(limit), Verdict::OverOutputLimit { .. }) {
                        break;
                    }
                }
                Ok(false) => {
                    self.more_input = false;
                    break;
                }
                Err(e) => {
                    self.finish_scripts().await;
                    Reply::error(e.to_string()).encode(&mut self.out, self.client.resp3);
                    self.closing = true;
                    break;
                }
            }
        }
        self.finish_scripts().await;
        self.args.clear();
        if executed > 0 {
            self.state
                .stats
                .commands
                .fetch_add(executed, Ordering::Relaxed);
            // The spinner wakes the replication streams for this turn's writes, after
            // the other ready connections had their turn (`server::spin`).
            SPIN.with(|s| s.batch_done());
        }
    }

    /// `CLIENT PAUSE`: waits while the pause holds this command, the replies before it
    /// written out first (and the scripts before it finished). Whether it waited.
    async fn wait_unpaused(&mut self) -> bool {
        let pause = &self.state.pause;
        if !pause.maybe_active() {
            return false;
        }
        let writes = crate::cmd::pausable_write(&self.client, &self.args);
        if !pause.would_hold(writes) {
            return false;
        }
        self.finish_scripts().await;
        self.state.repl.wake();
        self.durable().await;
        let _ = self.write_some();
        pause.wait(writes).await;
        true
    }

    /// With `appendfsync always`: until this client's writes are in the append-only
    /// file, synced, before their replies go out (the file's thread syncs once for every
    /// client waiting).
    async fn durable(&self) {
        let aof = &self.state.persist.aof;
        if aof.must_wait(self.client.woff) {
            self.state.repl.wake();
            aof.wait_durable(self.client.woff).await;
        }
    }

    /// Waits for the replies of the scripts handed over, and writes them in order.
    async fn finish_scripts(&mut self) {
        if self.scripts.is_empty() {
            return;
        }
        while let Some((pending, suppressed)) = self.scripts.pop_front() {
            let reply = pending
                .await
                .unwrap_or_else(|_| Reply::err("ERR the script thread is gone"));
            if !suppressed {
                reply.encode(&mut self.out, self.client.resp3);
            }
        }
        self.client.woff = self.state.repl.end();
    }

    /// Moves `first` and every other push already in the mailbox into the output
    /// buffer, where the output buffer limit applies to them.
    fn take_pushes(&mut self, first: crate::pubsub::Push) {
        let Some(subs) = self.client.pubsub.as_mut() else {
            return;
        };
        if self.out.capacity() == 0 {
            self.out = buffers::take_write();
        }
        let resp3 = self.client.resp3;
        let mut next = Some(first);
        while let Some(push) = next {
            crate::cmd::pubsub::encode_push(push, subs, resp3).encode(&mut self.out, resp3);
            if self.out.len() - self.sent >= TURN_REPLY_BYTES * 16 {
                break;
            }
            next = subs.inbox.try_recv().ok();
        }
        subs.show_in(&self.client.info);
    }

    /// Waits for the reply of a blocked command: served by a writer, or its timeout,
    /// `CLIENT UNBLOCK`, or the slot leaving this node (see [`crate::blocking`]).
    /// Meanwhile the client's input is read (and kept), so that its disconnection ends
    /// the wait at once: `None` then, or when the node shuts down.
    async fn wait_blocked(&mut self, b: crate::cmd::blocking::Block) -> Option<Reply> {
        let crate::cmd::blocking::Block {
            waiter,
            mut reply,
            mut deadline,
        } = b;
        self.client.info.blocked.store(true, Ordering::Relaxed);
        let mut gone = false;
        let limit = self.state.config.client_query_buffer_limit();
        let r = loop {
            tokio::select! {
                r = &mut reply => break r.unwrap_or_else(|_| waiter.kind.timeout_reply()),
                _ = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d.into()).await,
                        None => std::future::pending().await,
                    }
                } => {
                    deadline = None;
                    waiter.answer(waiter.kind.timeout_reply());
                }
                ready = self.stream.readable(), if !gone => {
                    let open = ready.is_ok() && matches!(self.read(), Ok(true));
                    if !open || self.input.len() > limit {
                        gone = true;
                        waiter.answer(Reply::Null);
                    }
                }
                _ = self.stop.changed(), if !gone => {
                    gone = true;
                    waiter.answer(Reply::Null);
                }
                _ = self.client.info.kill.notified(), if !gone => {
                    gone = true;
                    waiter.answer(Reply::Null);
                }
            }
        };
        self.state.blocked.finish(self.state, &waiter);
        self.client.info.blocked.store(false, Ordering::Relaxed);
        (!gone).then_some(r)
    }

    /// Checks the unsent replies against the class's limits (and keeps the soft
    /// limit's clock).
    fn check(&mut self, limit: &ClassLimit) -> Verdict {
        let unsent = self.unsent();
        if limit.hard > 0 && unsent as u64 >= limit.hard {
            return Verdict::OverOutputLimit {
                unsent,
                soft: false,
            };
        }
        if limit.soft > 0 && unsent as u64 >= limit.soft {
            let since = *self.soft_since.get_or_insert_with(Instant::now);
            if since.elapsed() > limit.soft_for() {
                return Verdict::OverOutputLimit { unsent, soft: true };
            }
        } else {
            self.soft_since = None;
        }
        Verdict::Fine
    }

    fn disconnect_over_limit(
        &mut self,
        limit: &ClassLimit,
        unsent: usize,
        soft: bool,
    ) -> std::io::Result<()> {
        self.state
            .stats
            .output_limit_disconnections
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            client = self.client.id,
            addr = %self.client.info.addr,
            class = self.client.class().name(),
            unsent,
            hard = limit.hard,
            soft = limit.soft,
            soft_seconds = limit.soft_seconds,
            "client closed for overcoming of output buffer limits ({} limit)",
            if soft { "soft" } else { "hard" }
        );
        Ok(())
    }

    /// Writes what the socket takes now, without waiting.
    fn write_some(&mut self) -> std::io::Result<()> {
        while self.sent < self.out.len() {
            match self.stream.try_write(&self.out[self.sent..]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        } else if self.sent >= buffers::KEEP_MAX && self.sent * 2 >= self.out.len() {
            // Most of the buffer is written: move the rest to the front (at most about
            // the high water mark) instead of letting the buffer grow.
            self.out.drain(..self.sent);
            self.sent = 0;
        }
        Ok(())
    }

    /// Reads what the socket has; `false` at end of stream.
    fn read(&mut self) -> std::io::Result<bool> {
        if self.input.capacity() == 0 {
            self.input = buffers::take_read();
        } else if self.input.capacity() - self.input.len() < READ_ROOM {
            self.input.reserve(buffers::CHUNK);
        }
        let read = self.stream.try_read_buf(&mut self.input);
        // For CLIENT LIST: what is buffered and not parsed yet.
        self.client
            .info
            .set_query_buffer(self.input.len(), self.input.capacity());
        match read {
            Ok(0) => Ok(false),
            Ok(_) => {
                self.more_input = true;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Gives empty buffers back to the thread's pool.
    fn release(&mut self) {
        if self.input.is_empty() && self.input.capacity() > 0 {
            buffers::give_read(std::mem::take(&mut self.input));
        }
        if self.out.is_empty() && self.out.capacity() > 0 {
            buffers::give_write(std::mem::take(&mut self.out));
        }
    }
}
