//! Which wire protocol an Iggy server speaks, asked before logging in.
//!
//! Iggy changed its wire protocol in 0.9 (and again in 0.10) with no
//! negotiation: a client of one generation and a server of another wait on
//! each other, or read each other's bytes as garbage. So before logging in,
//! Ferry asks in a way each generation answers differently:
//!
//! 1. It sends the 0.8 PING, 8 bytes: `[length 4][code 1]`. A 0.8 server
//!    answers at once with an empty OK (`[status 0][length 0]`); no login
//!    is needed for a ping.
//! 2. A server that says nothing is likely one that reads 256-byte headers
//!    (0.9 on). Ferry sends the other 248 bytes of a 0.9 PING header: the 8
//!    already sent land in the header's checksum, which 0.9 does not check
//!    on a client's frames. A 0.9 server replies with a Reply header.
//! 3. Ferry then registers with protocol version 0, which such a server
//!    refuses before it reads any credentials, with an eviction naming the
//!    protocol versions it accepts: 0.11.x is the 0.9 generation's (crate
//!    `iggy` 0.11); any other window is a generation this Ferry does not
//!    speak, and so is any answer that fits none of these.
//!
//! Layouts: iggy-server 0.8 `core/binary_protocol/src/framing.rs`; 0.9
//! `core/binary_protocol/src/consensus/header.rs` and `version.rs`.

use std::fmt;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// A wire protocol generation of Iggy servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// iggy-server 0.8: 8-byte frames, crate `iggy` 0.10.
    V0_8,
    /// iggy-server 0.9: 256-byte consensus headers, crate `iggy` 0.11.
    V0_9,
}

impl Generation {
    /// The generation as users and the server's releases name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Generation::V0_8 => "0.8",
            Generation::V0_9 => "0.9",
        }
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long a 0.8 server may take to answer its PING before the silence is
/// taken as a server that waits for a longer header. A 0.8 server that
/// answers later still reads as 0.8 (its late answer leads the reply to
/// step 2), so this only needs to cover most round trips.
const QUIET: Duration = Duration::from_millis(500);

/// 0.9 header size, and the offsets of the fields read or written here.
const HEADER: usize = 256;
const SIZE_AT: usize = 48;
const COMMAND_AT: usize = 60;
const CLIENT_AT: usize = 128;
const OPERATION_AT: usize = 176;
const CODE_AT: usize = 196;
const EVICTION_MAX_AT: usize = 144;
const EVICTION_MIN_AT: usize = 148;
const EVICTION_REASON_AT: usize = 255;

const COMMAND_REQUEST: u8 = 5;
const COMMAND_REPLY: u8 = 8;
const COMMAND_EVICTION: u8 = 13;
const OPERATION_REGISTER: u8 = 1;
const OPERATION_NON_REPLICATED: u8 = 2;
const PING_CODE: u32 = 1;
const REASON_INCOMPATIBLE_PROTOCOL: u8 = 14;

/// The 0.8 PING: length 4 (the code alone), code 1.
const LEGACY_PING: [u8; 8] = [4, 0, 0, 0, 1, 0, 0, 0];
/// The 0.8 answer to it: status 0, length 0.
const LEGACY_OK: [u8; 8] = [0; 8];

/// What the server said that fits no generation this Ferry speaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{seen}")]
pub struct Unrecognised {
    /// What was seen, as a sentence a user can act on.
    pub seen: String,
}

/// Why the probe found no generation.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The connection closed or failed mid-probe, as when a server goes
    /// down: nothing was learnt, and asking again later may be answered.
    #[error("the connection was lost during the protocol probe")]
    Lost(#[source] std::io::Error),
    /// The server answered, and not as any generation this Ferry speaks.
    #[error(transparent)]
    Unrecognised(#[from] Unrecognised),
}

/// Asks the server at the other end of `stream` which protocol it speaks,
/// within `deadline`. `stream` should be fresh: the probe leaves it in no
/// state to log in on.
pub async fn detect<S>(stream: &mut S, deadline: Duration) -> Result<Generation, DetectError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let until = Instant::now() + deadline;
    let unrecognised = |seen: String| DetectError::Unrecognised(Unrecognised { seen });
    let lost = DetectError::Lost;

    stream.write_all(&LEGACY_PING).await.map_err(lost)?;
    let quiet_until = until.min(Instant::now() + QUIET);
    let answer = read_until(stream, LEGACY_OK.len(), quiet_until).await.map_err(lost)?;
    match answer.as_slice() {
        [] if Instant::now() >= until => {
            return Err(unrecognised(format!("the server said nothing to a 0.8 PING within {deadline:?}")));
        }
        [] => {}
        answer if answer == LEGACY_OK => return Ok(Generation::V0_8),
        answer => return Err(unrecognised(format!("the server answered a 0.8 PING with {}", hex(answer)))),
    }

    let ping = ping_header();
    stream.write_all(&ping[LEGACY_PING.len()..]).await.map_err(lost)?;
    let reply = read_until(stream, HEADER, until).await.map_err(lost)?;
    if reply.len() >= LEGACY_OK.len()
        && reply[..LEGACY_OK.len()] == LEGACY_OK
        && reply.get(COMMAND_AT) != Some(&COMMAND_REPLY)
    {
        // A 0.8 server slower than QUIET: its answer to the first PING leads.
        return Ok(Generation::V0_8);
    }
    if reply.len() < HEADER {
        let seen = match reply.is_empty() {
            true => format!("the server said nothing to a 0.8 PING or a 0.9 PING within {deadline:?}"),
            false => format!("the server answered a 0.9 PING with {} bytes: {}", reply.len(), hex(&reply)),
        };
        return Err(unrecognised(seen));
    }
    if reply[COMMAND_AT] != COMMAND_REPLY {
        return Err(unrecognised(format!("the server answered a 0.9 PING with command {}", reply[COMMAND_AT])));
    }
    skip_body(stream, &reply, until).await.map_err(lost)?;

    stream.write_all(&register_with_version_zero()).await.map_err(lost)?;
    let eviction = read_until(stream, HEADER, until).await.map_err(lost)?;
    let window = accepted_window(&eviction).ok_or_else(|| {
        unrecognised(format!(
            "the server answered a 0.9 PING but not a registration with protocol version 0 as 0.9 does ({} bytes)",
            eviction.len()
        ))
    })?;
    match window.contains(SPOKEN_0_9) {
        true => Ok(Generation::V0_9),
        false => {
            Err(unrecognised(format!("the server accepts Iggy protocol versions {window} only (0.9 is {SPOKEN_0_9})")))
        }
    }
}

/// The protocol version of crate `iggy` 0.11, which 0.9 servers accept.
const SPOKEN_0_9: ProtocolVersion = ProtocolVersion::new(0, 11, 0);

/// A 0.9-style protocol version, packed as `major << 20 | minor << 10 | patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct ProtocolVersion(u32);

impl ProtocolVersion {
    const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self(major << 20 | minor << 10 | patch)
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0 >> 20, (self.0 >> 10) & 0x3ff, self.0 & 0x3ff)
    }
}

/// The protocol versions a server accepts, as its eviction names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    min: ProtocolVersion,
    max: ProtocolVersion,
}

impl Window {
    /// The server's own rule: at least `min`, and a major.minor no newer
    /// than `max`'s (any patch of it).
    fn contains(&self, version: ProtocolVersion) -> bool {
        version >= self.min && version.0 >> 10 <= self.max.0 >> 10
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {}", self.min, self.max)
    }
}

/// The window an eviction for an incompatible protocol names, if that is
/// what `frame` is.
fn accepted_window(frame: &[u8]) -> Option<Window> {
    let header = frame.get(..HEADER)?;
    let is_eviction = header[COMMAND_AT] == COMMAND_EVICTION && read_u32(header, SIZE_AT) as usize == HEADER;
    if !is_eviction || header[EVICTION_REASON_AT] != REASON_INCOMPATIBLE_PROTOCOL {
        return None;
    }
    let (max, min) = (read_u32(header, EVICTION_MAX_AT), read_u32(header, EVICTION_MIN_AT));
    (min != 0 && max >= min).then_some(Window { min: ProtocolVersion(min), max: ProtocolVersion(max) })
}

/// A 0.9 request header of `size` bytes in all, for `operation`.
fn request_header(size: usize, operation: u8) -> [u8; HEADER] {
    let mut header = [0; HEADER];
    header[SIZE_AT..SIZE_AT + 4].copy_from_slice(&(size as u32).to_le_bytes());
    header[COMMAND_AT] = COMMAND_REQUEST;
    header[CLIENT_AT..CLIENT_AT + 16].copy_from_slice(&client_id().to_le_bytes());
    header[OPERATION_AT] = operation;
    header
}

/// A 0.9 PING (a non-replicated request, code 1, allowed before login)
/// whose first 8 bytes are the 0.8 PING.
fn ping_header() -> [u8; HEADER] {
    let mut header = request_header(HEADER, OPERATION_NON_REPLICATED);
    header[CODE_AT..CODE_AT + 4].copy_from_slice(&PING_CODE.to_le_bytes());
    header[..LEGACY_PING.len()].copy_from_slice(&LEGACY_PING);
    header
}

/// A 0.9 registration whose body is only the client's version prefix, with
/// protocol version 0 (which no server accepts) and Ferry's name.
fn register_with_version_zero() -> Vec<u8> {
    let (name, version) = (b"ferry".as_slice(), env!("CARGO_PKG_VERSION").as_bytes());
    let mut body = Vec::with_capacity(6 + name.len() + version.len());
    body.extend_from_slice(&0u32.to_le_bytes());
    body.push(name.len() as u8);
    body.extend_from_slice(name);
    body.push(version.len() as u8);
    body.extend_from_slice(version);
    let mut frame = request_header(HEADER + body.len(), OPERATION_REGISTER).to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// A client id for the probe: 0.9 refuses 0, and any other will do.
fn client_id() -> u128 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_nanos());
    (nanos << 32 | u128::from(std::process::id())) | 1
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

/// Reads until `wanted` bytes or `until`, whichever comes first; what
/// arrived by then. A stream that ends first is an error (`UnexpectedEof`):
/// the server went away rather than answered.
async fn read_until<S: AsyncRead + Unpin>(stream: &mut S, wanted: usize, until: Instant) -> std::io::Result<Vec<u8>> {
    let mut buffer = vec![0; wanted];
    let mut filled = 0;
    while filled < wanted {
        match tokio::time::timeout_at(until, stream.read(&mut buffer[filled..])).await {
            Err(_) => break,
            Ok(Ok(0)) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(Ok(read)) => filled += read,
            Ok(Err(error)) => return Err(error),
        }
    }
    buffer.truncate(filled);
    Ok(buffer)
}

/// Reads past the body a 0.9 frame's header announces.
async fn skip_body<S: AsyncRead + Unpin>(stream: &mut S, header: &[u8], until: Instant) -> std::io::Result<()> {
    let body = (read_u32(header, SIZE_AT) as usize).saturating_sub(HEADER).min(1 << 20);
    if body > 0 {
        read_until(stream, body, until).await?;
    }
    Ok(())
}

/// Up to the first 32 bytes, in hex.
fn hex(bytes: &[u8]) -> String {
    let shown: String = bytes.iter().take(32).map(|byte| format!("{byte:02x}")).collect();
    match bytes.len() > 32 {
        true => format!("{shown}…"),
        false => shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_the_ping_header_then_it_starts_with_the_legacy_ping_and_is_a_0_9_request() {
        let header = ping_header();
        assert_eq!(&header[..8], &LEGACY_PING);
        assert_eq!(read_u32(&header, SIZE_AT), 256);
        assert_eq!((header[COMMAND_AT], header[OPERATION_AT]), (COMMAND_REQUEST, OPERATION_NON_REPLICATED));
        assert_eq!(read_u32(&header, CODE_AT), PING_CODE);
        assert_ne!(&header[CLIENT_AT..CLIENT_AT + 16], &[0; 16]);
    }

    #[test]
    fn given_the_registration_then_its_size_covers_the_version_prefix() {
        let frame = register_with_version_zero();
        assert_eq!(read_u32(&frame, SIZE_AT) as usize, frame.len());
        assert_eq!(frame[OPERATION_AT], OPERATION_REGISTER);
        assert_eq!(&frame[HEADER..HEADER + 4], &[0; 4], "protocol version 0");
        assert_eq!(&frame[HEADER + 4..HEADER + 10], b"\x05ferry");
    }

    fn eviction(reason: u8, min: ProtocolVersion, max: ProtocolVersion) -> Vec<u8> {
        let mut frame = vec![0; HEADER];
        frame[SIZE_AT..SIZE_AT + 4].copy_from_slice(&256u32.to_le_bytes());
        frame[COMMAND_AT] = COMMAND_EVICTION;
        frame[EVICTION_MAX_AT..EVICTION_MAX_AT + 4].copy_from_slice(&max.0.to_le_bytes());
        frame[EVICTION_MIN_AT..EVICTION_MIN_AT + 4].copy_from_slice(&min.0.to_le_bytes());
        frame[EVICTION_REASON_AT] = reason;
        frame
    }

    #[test]
    fn given_an_eviction_for_the_protocol_then_its_window_is_read_and_judged_by_the_servers_rule() {
        let v = ProtocolVersion::new;
        let window = accepted_window(&eviction(14, v(0, 11, 0), v(0, 11, 3))).expect("a window");
        assert!(window.contains(SPOKEN_0_9));
        let newer = accepted_window(&eviction(14, v(0, 12, 0), v(0, 12, 0))).expect("a window");
        assert!(!newer.contains(SPOKEN_0_9));
        assert_eq!(newer.to_string(), "0.12.0 to 0.12.0");
        assert_eq!(accepted_window(&eviction(15, v(0, 11, 0), v(0, 11, 0))), None, "another reason");
        assert_eq!(accepted_window(&eviction(14, v(0, 0, 0), v(0, 11, 0))), None, "no window");
        assert_eq!(accepted_window(&[0; 10]), None, "too short");
    }
}
