//! The VNC console of a simulated guest: a minimal RFB server spoken
//! straight over the proxy's websocket, so a console URL from the fake
//! driver behaves like one from a real hypervisor (Tempest's RFB
//! handshake, a noVNC page showing a blank screen). It offers RFB 3.8
//! (3.7 and 3.3 on request) with security type None, announces a fixed
//! framebuffer named after the instance, answers each full update
//! request with one raw rectangle of the background colour and leaves
//! incremental requests pending, as a server whose screen never changes
//! does. Input events are read and dropped. Each server message goes out
//! as one binary websocket message.

use axum::extract::ws::{Message, WebSocket};
use bytes::Bytes;
use futures_util::SinkExt;

/// Framebuffer size in pixels.
pub const WIDTH: u16 = 640;
pub const HEIGHT: u16 = 480;
/// The longest name sent in ServerInit, so the message fits in one small
/// websocket frame (clients read the handshake in frames under 126 bytes).
const MAX_NAME: usize = 64;
/// The screen colour (dark slate), as 8-bit red, green, blue.
const BACKGROUND: [u32; 3] = [0x20, 0x30, 0x40];
/// Largest ClientCutText accepted before the connection is dropped.
const MAX_CUT_TEXT: usize = 1 << 20;

/// How the client wants pixels encoded (RFB PIXEL_FORMAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelFormat {
    pub bits_per_pixel: u8,
    pub depth: u8,
    pub big_endian: bool,
    pub true_colour: bool,
    pub max: [u16; 3],
    pub shift: [u8; 3],
}

impl PixelFormat {
    /// The server's native format: 32 bpp, depth 24, little-endian
    /// 0x00RRGGBB.
    pub const NATIVE: PixelFormat = PixelFormat {
        bits_per_pixel: 32,
        depth: 24,
        big_endian: false,
        true_colour: true,
        max: [255, 255, 255],
        shift: [16, 8, 0],
    };

    /// The 16 bytes of the wire form.
    pub fn encode(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0] = self.bits_per_pixel;
        b[1] = self.depth;
        b[2] = u8::from(self.big_endian);
        b[3] = u8::from(self.true_colour);
        for i in 0..3 {
            b[4 + 2 * i..6 + 2 * i].copy_from_slice(&self.max[i].to_be_bytes());
            b[10 + i] = self.shift[i];
        }
        b
    }

    /// Reads the wire form; None for a bits-per-pixel RFB does not allow.
    pub fn decode(b: &[u8]) -> Option<PixelFormat> {
        let b: &[u8; 16] = b.get(..16)?.try_into().ok()?;
        let pf = PixelFormat {
            bits_per_pixel: b[0],
            depth: b[1],
            big_endian: b[2] != 0,
            true_colour: b[3] != 0,
            max: [
                u16::from_be_bytes([b[4], b[5]]),
                u16::from_be_bytes([b[6], b[7]]),
                u16::from_be_bytes([b[8], b[9]]),
            ],
            shift: [b[10], b[11], b[12]],
        };
        matches!(pf.bits_per_pixel, 8 | 16 | 32).then_some(pf)
    }

    /// One pixel of 8-bit `rgb` in this format (index 0 under a colour
    /// map, which this server never sets).
    pub fn pixel(&self, rgb: [u32; 3]) -> Vec<u8> {
        let mut v: u32 = 0;
        if self.true_colour {
            for ((c, max), shift) in rgb.iter().zip(self.max).zip(self.shift) {
                let c = (*c).min(255) * u32::from(max) / 255;
                v |= c.checked_shl(u32::from(shift)).unwrap_or(0);
            }
        }
        let n = usize::from(self.bits_per_pixel / 8);
        if self.big_endian {
            v.to_be_bytes()[4 - n..].to_vec()
        } else {
            v.to_le_bytes()[..n].to_vec()
        }
    }
}

/// The ServerInit message for a screen called `name`.
pub fn server_init(name: &str) -> Vec<u8> {
    let mut end = name.len().min(MAX_NAME);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let name = &name.as_bytes()[..end];
    let mut m = Vec::with_capacity(24 + name.len());
    m.extend_from_slice(&WIDTH.to_be_bytes());
    m.extend_from_slice(&HEIGHT.to_be_bytes());
    m.extend_from_slice(&PixelFormat::NATIVE.encode());
    m.extend_from_slice(&(name.len() as u32).to_be_bytes());
    m.extend_from_slice(name);
    m
}

/// A FramebufferUpdate of one raw rectangle covering the request
/// (clipped to the screen) in the background colour.
pub fn full_update(pf: &PixelFormat, x: u16, y: u16, w: u16, h: u16) -> Vec<u8> {
    let x = x.min(WIDTH);
    let y = y.min(HEIGHT);
    let w = w.min(WIDTH - x);
    let h = h.min(HEIGHT - y);
    let px = pf.pixel(BACKGROUND);
    let mut m = Vec::with_capacity(16 + px.len() * usize::from(w) * usize::from(h));
    m.extend_from_slice(&[0, 0, 0, 1]); // FramebufferUpdate, one rectangle
    for v in [x, y, w, h] {
        m.extend_from_slice(&v.to_be_bytes());
    }
    m.extend_from_slice(&0i32.to_be_bytes()); // Raw encoding
    for _ in 0..usize::from(w) * usize::from(h) {
        m.extend_from_slice(&px);
    }
    m
}

/// What the server does with one client message.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientMsg {
    SetPixelFormat(PixelFormat),
    UpdateRequest {
        incremental: bool,
        x: u16,
        y: u16,
        w: u16,
        h: u16,
    },
    /// Encodings, key and pointer events, cut text: nothing to answer.
    Ignored,
}

/// Takes one whole client message off the front of `buf`: Ok(None) when
/// more bytes are needed, Err for a message this server cannot follow.
pub fn take_message(buf: &mut Vec<u8>) -> Result<Option<ClientMsg>, String> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    let be16 = |b: &[u8], at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    let len = match kind {
        0 => 20,
        2 if buf.len() >= 4 => 4 + 4 * usize::from(be16(buf, 2)),
        3 => 10,
        4 => 8,
        5 => 6,
        6 if buf.len() >= 8 => {
            let n = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
            if n > MAX_CUT_TEXT {
                return Err(format!("cut text of {n} bytes"));
            }
            8 + n
        }
        2 | 6 => return Ok(None),
        other => return Err(format!("unknown client message type {other}")),
    };
    if buf.len() < len {
        return Ok(None);
    }
    let m: Vec<u8> = buf.drain(..len).collect();
    Ok(Some(match kind {
        0 => ClientMsg::SetPixelFormat(
            PixelFormat::decode(&m[4..20]).ok_or("unsupported pixel format")?,
        ),
        3 => ClientMsg::UpdateRequest {
            incremental: m[1] != 0,
            x: be16(&m, 2),
            y: be16(&m, 4),
            w: be16(&m, 6),
            h: be16(&m, 8),
        },
        _ => ClientMsg::Ignored,
    }))
}

/// Bytes arriving over a websocket, read as a stream.
struct Incoming {
    ws: WebSocket,
    buf: Vec<u8>,
}

impl Incoming {
    /// Reads more bytes into the buffer; false once the client is gone.
    async fn fill(&mut self) -> bool {
        loop {
            match self.ws.recv().await {
                Some(Ok(Message::Binary(b))) => {
                    self.buf.extend_from_slice(&b);
                    return true;
                }
                Some(Ok(Message::Text(t))) => {
                    self.buf.extend_from_slice(t.as_str().as_bytes());
                    return true;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_)) | Err(_)) | None => return false,
            }
        }
    }

    /// The next `n` bytes, or None once the client is gone.
    async fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill().await {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    async fn send(&mut self, bytes: Vec<u8>) -> Option<()> {
        self.ws.send(Message::Binary(Bytes::from(bytes))).await.ok()
    }
}

/// Serves the screen of the guest called `name` until the client leaves.
pub async fn serve(ws: WebSocket, name: &str) {
    let mut io = Incoming {
        ws,
        buf: Vec::new(),
    };
    if let Err(e) = session(&mut io, name).await {
        tracing::info!(console = name, "simulated VNC session ended: {e}");
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), io.ws.close()).await;
}

async fn session(io: &mut Incoming, name: &str) -> Result<(), String> {
    let gone = || "client left".to_string();
    io.send(b"RFB 003.008\n".to_vec()).await.ok_or_else(gone)?;
    let version = io.take(12).await.ok_or_else(gone)?;
    let minor = match version.as_slice() {
        b"RFB 003.003\n" => 3,
        b"RFB 003.007\n" => 7,
        v if v.starts_with(b"RFB 003.") => 8,
        v => return Err(format!("not an RFB client: {v:?}")),
    };
    if minor == 3 {
        // RFB 3.3: the server picks the security type, None.
        io.send(1u32.to_be_bytes().to_vec())
            .await
            .ok_or_else(gone)?;
    } else {
        io.send(vec![1, 1]).await.ok_or_else(gone)?;
        let chosen = io.take(1).await.ok_or_else(gone)?;
        if chosen != [1] {
            if minor == 8 {
                let reason = b"Only security type None is offered.";
                let mut m = vec![0, 0, 0, 1];
                m.extend_from_slice(&(reason.len() as u32).to_be_bytes());
                m.extend_from_slice(reason);
                let _ = io.send(m).await;
            }
            return Err(format!("client chose security type {chosen:?}"));
        }
        if minor == 8 {
            io.send(vec![0, 0, 0, 0]).await.ok_or_else(gone)?;
        }
    }
    io.take(1).await.ok_or_else(gone)?; // ClientInit (shared flag)
    io.send(server_init(name)).await.ok_or_else(gone)?;
    let mut pf = PixelFormat::NATIVE;
    loop {
        while let Some(msg) = take_message(&mut io.buf)? {
            match msg {
                ClientMsg::SetPixelFormat(p) => pf = p,
                ClientMsg::UpdateRequest {
                    incremental: false,
                    x,
                    y,
                    w,
                    h,
                } => {
                    io.send(full_update(&pf, x, y, w, h))
                        .await
                        .ok_or_else(gone)?;
                }
                ClientMsg::UpdateRequest { .. } | ClientMsg::Ignored => {}
            }
        }
        if !io.fill().await {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_init_has_the_size_format_and_a_bounded_name() {
        let m = server_init("instance-00000001");
        assert_eq!(&m[0..2], &WIDTH.to_be_bytes());
        assert_eq!(&m[2..4], &HEIGHT.to_be_bytes());
        assert_eq!(PixelFormat::decode(&m[4..20]), Some(PixelFormat::NATIVE));
        assert_eq!(u32::from_be_bytes([m[20], m[21], m[22], m[23]]), 17);
        assert_eq!(&m[24..], b"instance-00000001");
        // A long multi-byte name is cut at a character boundary.
        let long = "é".repeat(100);
        let m = server_init(&long);
        let n = u32::from_be_bytes([m[20], m[21], m[22], m[23]]) as usize;
        assert!(n <= MAX_NAME && m.len() == 24 + n && m.len() < 126);
        assert!(std::str::from_utf8(&m[24..]).is_ok());
    }

    #[test]
    fn pixels_follow_the_clients_format() {
        assert_eq!(
            PixelFormat::NATIVE.pixel([0x20, 0x30, 0x40]),
            vec![0x40, 0x30, 0x20, 0]
        );
        // noVNC's format: red at shift 0.
        let rgbx = PixelFormat {
            shift: [0, 8, 16],
            ..PixelFormat::NATIVE
        };
        assert_eq!(rgbx.pixel([0x20, 0x30, 0x40]), vec![0x20, 0x30, 0x40, 0]);
        let be565 = PixelFormat {
            bits_per_pixel: 16,
            depth: 16,
            big_endian: true,
            true_colour: true,
            max: [31, 63, 31],
            shift: [11, 5, 0],
        };
        assert_eq!(be565.pixel([255, 0, 255]), vec![0xf8, 0x1f]);
        let bad_shift = PixelFormat {
            shift: [40, 8, 0],
            ..PixelFormat::NATIVE
        };
        assert_eq!(bad_shift.pixel([255, 0, 0]), vec![0, 0, 0, 0]);
    }

    #[test]
    fn updates_are_clipped_to_the_screen() {
        let m = full_update(&PixelFormat::NATIVE, 600, 0, 100, 2);
        // 40 wide (clipped), 2 high, 4 bytes each, after 16 header bytes.
        assert_eq!(&m[4..12], &[2, 88, 0, 0, 0, 40, 0, 2]);
        assert_eq!(m.len(), 16 + 40 * 2 * 4);
        let m = full_update(&PixelFormat::NATIVE, 9999, 9999, 10, 10);
        assert_eq!(m.len(), 16);
    }

    #[test]
    fn client_messages_are_split_and_unknown_ones_refused() {
        let mut buf = vec![3, 0, 0, 0, 0, 0, 2, 128, 1, 224, 5];
        assert_eq!(
            take_message(&mut buf),
            Ok(Some(ClientMsg::UpdateRequest {
                incremental: false,
                x: 0,
                y: 0,
                w: 640,
                h: 480
            }))
        );
        assert_eq!(buf, vec![5]);
        assert_eq!(take_message(&mut buf), Ok(None), "a partial pointer event");
        buf.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(take_message(&mut buf), Ok(Some(ClientMsg::Ignored)));
        assert!(buf.is_empty());
        // SetEncodings with two encodings needs 12 bytes.
        buf.extend_from_slice(&[2, 0, 0, 2, 0, 0, 0, 0]);
        assert_eq!(take_message(&mut buf), Ok(None));
        buf.extend_from_slice(&[0, 0, 0, 1]);
        assert_eq!(take_message(&mut buf), Ok(Some(ClientMsg::Ignored)));
        let mut pf = vec![0, 0, 0, 0];
        pf.extend_from_slice(&PixelFormat::NATIVE.encode());
        assert_eq!(
            take_message(&mut pf),
            Ok(Some(ClientMsg::SetPixelFormat(PixelFormat::NATIVE)))
        );
        let mut huge_cut = vec![6, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        assert!(take_message(&mut huge_cut).is_err());
        assert!(take_message(&mut vec![200, 1, 2]).is_err());
        let mut bad_bpp = vec![0, 0, 0, 0, 24];
        bad_bpp.resize(20, 0);
        assert!(take_message(&mut bad_bpp).is_err());
    }
}
