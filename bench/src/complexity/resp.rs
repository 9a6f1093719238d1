//! A minimal blocking RESP2 client: the same few lines of client work for both servers,
//! so that what a cell measures is the server (no connection pool, no cluster routing,
//! no reply conversion beyond the frame itself).

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context};

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    /// `None` is the null bulk string.
    Bulk(Option<Vec<u8>>),
    /// `None` is the null array.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply, unless it is an error reply (then the server's message as the error).
    pub fn ok(self) -> anyhow::Result<Reply> {
        match self {
            Reply::Error(e) => bail!("{e}"),
            r => Ok(r),
        }
    }

    pub fn int(self) -> anyhow::Result<i64> {
        match self.ok()? {
            Reply::Int(i) => Ok(i),
            r => bail!("expected an integer, got {}", r.brief()),
        }
    }

    /// A non-null bulk string.
    pub fn bulk(self) -> anyhow::Result<Vec<u8>> {
        match self.ok()? {
            Reply::Bulk(Some(b)) => Ok(b),
            r => bail!("expected a bulk string, got {}", r.brief()),
        }
    }

    /// A non-null array.
    pub fn array(self) -> anyhow::Result<Vec<Reply>> {
        match self.ok()? {
            Reply::Array(Some(a)) => Ok(a),
            r => bail!("expected an array, got {}", r.brief()),
        }
    }

    /// A non-null array of exactly `len` elements.
    pub fn array_of(self, len: usize) -> anyhow::Result<Vec<Reply>> {
        let a = self.array()?;
        if a.len() != len {
            bail!("expected {len} elements, got {}", a.len());
        }
        Ok(a)
    }

    /// A short description for error messages (never a whole 1M-element array).
    pub fn brief(&self) -> String {
        match self {
            Reply::Simple(s) => format!("+{s}"),
            Reply::Error(e) => format!("-{e}"),
            Reply::Int(i) => format!(":{i}"),
            Reply::Bulk(None) => "(nil)".into(),
            Reply::Bulk(Some(b)) => format!("{:?}", String::from_utf8_lossy(&b[..b.len().min(40)])),
            Reply::Array(None) => "(nil array)".into(),
            Reply::Array(Some(a)) => format!("an array of {}", a.len()),
        }
    }
}

/// A connection: commands are encoded into a buffer by [`Conn::send`] and written at
/// [`Conn::flush`] (so a pipeline is one write), replies read in order by [`Conn::read`].
pub struct Conn {
    reader: BufReader<TcpStream>,
    out: Vec<u8>,
    line: Vec<u8>,
}

impl Conn {
    pub fn connect(port: u16) -> anyhow::Result<Self> {
        let s = TcpStream::connect(("127.0.0.1", port))
            .with_context(|| format!("connect to 127.0.0.1:{port}"))?;
        s.set_nodelay(true)?;
        // Long enough for one O(n) command on 1M elements done badly; a hang is an error.
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Self {
            reader: BufReader::with_capacity(64 * 1024, s),
            out: Vec::with_capacity(4096),
            line: Vec::with_capacity(64),
        })
    }

    /// Appends one command (its arguments as bulk strings) to the output buffer.
    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        let out = &mut self.out;
        write!(out, "*{}\r\n", args.len()).expect("write to a Vec");
        for a in args {
            let a = a.as_ref();
            write!(out, "${}\r\n", a.len()).expect("write to a Vec");
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.reader.get_mut().write_all(&self.out)?;
        self.out.clear();
        Ok(())
    }

    /// Sends one command and reads its reply.
    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> anyhow::Result<Reply> {
        self.send(args);
        self.flush()?;
        self.read()
    }

    /// Reads the next reply.
    pub fn read(&mut self) -> anyhow::Result<Reply> {
        self.line.clear();
        let got = self.reader.read_until(b'\n', &mut self.line)?;
        if got < 3 || !self.line.ends_with(b"\r\n") {
            bail!("connection closed or malformed reply line");
        }
        let body = &self.line[1..self.line.len() - 2];
        let text = || String::from_utf8_lossy(body).into_owned();
        let num = || -> anyhow::Result<i64> {
            std::str::from_utf8(body)?
                .parse()
                .with_context(|| format!("bad length or integer {:?}", text()))
        };
        Ok(match self.line[0] {
            b'+' => Reply::Simple(text()),
            b'-' => Reply::Error(text()),
            b':' => Reply::Int(num()?),
            b'$' => match num()? {
                -1 => Reply::Bulk(None),
                len => {
                    let mut buf = vec![0u8; len as usize + 2];
                    io::Read::read_exact(&mut self.reader, &mut buf)?;
                    buf.truncate(len as usize);
                    Reply::Bulk(Some(buf))
                }
            },
            b'*' => match num()? {
                -1 => Reply::Array(None),
                len => {
                    let mut items = Vec::with_capacity(len as usize);
                    for _ in 0..len {
                        items.push(self.read()?);
                    }
                    Reply::Array(Some(items))
                }
            },
            b => bail!("unexpected reply type byte {:?}", b as char),
        })
    }
}
