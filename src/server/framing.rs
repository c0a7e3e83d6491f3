//! Just enough HTTP/1.1 framing to follow a connection's bytes beside hyper: where each
//! request's head and body are (the header-read, body-read and idle timeouts need to know, and
//! hyper does not say) and whether a head carries both `Content-Length` and `Transfer-Encoding`
//! (hyper drops one of them silently; a proxy in front may have used the other: smuggling).
//!
//! When the bytes are not the HTTP/1.1 this expects, the tracker says [`Phase::Lost`] and stops;
//! hyper, which parses for real, then decides what happens to the connection.

use std::time::Instant;

/// A head larger than this is not followed (hyper refuses far smaller ones).
const MAX_HEAD: usize = 1 << 20;
/// A chunk-size line longer than this is not HTTP.
const MAX_CHUNK_LINE: usize = 1024;

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Between requests: no byte of the next head yet.
    Idle,
    /// Inside a request head since this instant (its first byte).
    Head(Instant),
    /// Inside a request body since this instant (the end of its head).
    Body(Instant),
    /// Not followed any more.
    Lost,
}

/// What a complete request head said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Both `Content-Length` and `Transfer-Encoding`: the request must be refused.
    pub both_lengths: bool,
}

#[derive(Debug)]
enum State {
    Idle,
    Head,
    Fixed(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    Lost,
}

/// Follows one connection's incoming bytes.
#[derive(Debug)]
pub struct Framing {
    state: State,
    since: Instant,
    /// The head (or chunk-size line) read so far.
    buf: Vec<u8>,
    /// Bytes on the current line, not counting `\r` (an empty line ends a head).
    line: usize,
}

impl Framing {
    pub fn new(now: Instant) -> Self {
        Framing {
            state: State::Idle,
            since: now,
            buf: Vec::new(),
            line: 0,
        }
    }

    pub fn phase(&self) -> Phase {
        match self.state {
            State::Idle => Phase::Idle,
            State::Head => Phase::Head(self.since),
            State::Lost => Phase::Lost,
            _ => Phase::Body(self.since),
        }
    }

    /// Follow `data`, calling `on_head` for every complete request head.
    pub fn feed(&mut self, mut data: &[u8], now: Instant, mut on_head: impl FnMut(Head)) {
        while !data.is_empty() {
            match self.state {
                State::Lost => return,
                State::Idle => {
                    // Empty lines between requests are allowed (RFC 9112, section 2.2).
                    let skip = data
                        .iter()
                        .take_while(|b| matches!(b, b'\r' | b'\n'))
                        .count();
                    data = &data[skip..];
                    if !data.is_empty() {
                        self.state = State::Head;
                        self.since = now;
                        self.buf.clear();
                        self.line = 0;
                    }
                }
                State::Head => {
                    let mut end = None;
                    for (i, &b) in data.iter().enumerate() {
                        match b {
                            b'\n' if self.line == 0 => {
                                end = Some(i + 1);
                                break;
                            }
                            b'\n' => self.line = 0,
                            b'\r' => {}
                            _ => self.line += 1,
                        }
                    }
                    let take = end.unwrap_or(data.len());
                    if self.buf.len() + take > MAX_HEAD {
                        self.state = State::Lost;
                        return;
                    }
                    self.buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if end.is_some() {
                        let (head, next) = parse_head(&self.buf);
                        on_head(head);
                        self.state = next;
                        self.since = now;
                        self.buf.clear();
                        self.line = 0;
                    }
                }
                State::Fixed(left) => {
                    let take = (data.len() as u64).min(left);
                    data = &data[take as usize..];
                    self.state = if take == left {
                        State::Idle
                    } else {
                        State::Fixed(left - take)
                    };
                }
                State::ChunkSize => match data.iter().position(|&b| b == b'\n') {
                    None => {
                        if self.buf.len() + data.len() > MAX_CHUNK_LINE {
                            self.state = State::Lost;
                            return;
                        }
                        self.buf.extend_from_slice(data);
                        data = &[];
                    }
                    Some(i) => {
                        self.buf.extend_from_slice(&data[..i]);
                        data = &data[i + 1..];
                        let line = String::from_utf8_lossy(&self.buf).to_string();
                        self.buf.clear();
                        let size = line.split(';').next().unwrap_or("").trim();
                        self.state = match u64::from_str_radix(size, 16) {
                            Ok(0) => {
                                self.line = 0;
                                State::Trailers
                            }
                            Ok(n) => State::ChunkData(n),
                            Err(_) => State::Lost,
                        };
                    }
                },
                State::ChunkData(left) => {
                    let take = (data.len() as u64).min(left);
                    data = &data[take as usize..];
                    self.state = if take == left {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(left - take)
                    };
                }
                State::ChunkEnd => {
                    let b = data[0];
                    data = &data[1..];
                    self.state = match b {
                        b'\r' => State::ChunkEnd,
                        b'\n' => State::ChunkSize,
                        _ => State::Lost,
                    };
                }
                State::Trailers => {
                    let b = data[0];
                    data = &data[1..];
                    match b {
                        b'\n' if self.line == 0 => self.state = State::Idle,
                        b'\n' => self.line = 0,
                        b'\r' => {}
                        _ => self.line += 1,
                    }
                }
            }
        }
    }
}

/// A complete head: whether it carries both lengths, and where its body (if any) goes.
fn parse_head(raw: &[u8]) -> (Head, State) {
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let request_line = lines.next().unwrap_or("");
    let mut length: Option<Option<u64>> = None;
    let mut encoding: Option<String> = None;
    let mut upgrade = request_line.starts_with("CONNECT ");
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                let n = value.parse::<u64>().ok();
                length = Some(match length {
                    // Several equal lengths are one length; differing ones are no length.
                    Some(prev) if prev != n => None,
                    _ => n,
                });
            }
            "transfer-encoding" => {
                let all = encoding
                    .take()
                    .map_or(value.to_string(), |e| format!("{e},{value}"));
                encoding = Some(all);
            }
            "upgrade" => upgrade = true,
            _ => {}
        }
    }
    let both_lengths = length.is_some() && encoding.is_some();
    let next = if both_lengths || upgrade {
        State::Lost
    } else if let Some(e) = encoding {
        let last = e
            .rsplit(',')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if last == "chunked" {
            State::ChunkSize
        } else {
            State::Lost
        }
    } else {
        match length {
            None | Some(Some(0)) => State::Idle,
            Some(Some(n)) => State::Fixed(n),
            Some(None) => State::Lost,
        }
    };
    (Head { both_lengths }, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `input` in pieces of `step` bytes; the phases after each piece and the heads seen.
    fn run(input: &str, step: usize) -> (Vec<&'static str>, Vec<bool>) {
        let now = Instant::now();
        let mut f = Framing::new(now);
        let mut heads = Vec::new();
        let mut phases = Vec::new();
        for piece in input.as_bytes().chunks(step) {
            f.feed(piece, now, |h| heads.push(h.both_lengths));
            phases.push(match f.phase() {
                Phase::Idle => "idle",
                Phase::Head(_) => "head",
                Phase::Body(_) => "body",
                Phase::Lost => "lost",
            });
        }
        (phases, heads)
    }

    #[test]
    fn follows_heads_and_bodies() {
        let get = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        let post = "POST /v1/grade HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        let chunked = "POST /v1/grade HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nTrailer: t\r\n\r\n";
        for step in [1, 3, 7, 1000] {
            let all = format!("{get}\r\n{post}{chunked}{get}");
            let (phases, heads) = run(&all, step);
            assert_eq!(heads, [false, false, false, false], "step {step}");
            assert_eq!(*phases.last().unwrap(), "idle", "step {step}");
        }
        let (phases, _) = run("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", 1000);
        assert_eq!(phases, ["body"]);
        let (phases, heads) = run("GET / HTTP/1.1\r\nHost: x", 1000);
        assert_eq!((phases, heads.len()), (vec!["head"], 0));
        // Bare \n line ends, as hyper accepts them.
        let (phases, heads) = run("GET / HTTP/1.1\nHost: x\n\n", 1000);
        assert_eq!((phases, heads), (vec!["idle"], vec![false]));
    }

    #[test]
    fn both_lengths_are_flagged_in_either_order() {
        for head in [
            "POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 0\r\n\r\n",
        ] {
            let (phases, heads) = run(head, 1000);
            assert_eq!(heads, [true], "{head}");
            assert_eq!(phases, ["lost"]);
        }
        // Pipelined behind an honest request: the second head is the one flagged.
        let (_, heads) = run(
            "GET / HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
            5,
        );
        assert_eq!(heads, [false, true]);
    }
}
