//! Per-client delivery bookkeeping and random ids.

use std::time::{SystemTime, UNIX_EPOCH};

/// What one WebSocket client saw. Only its own task touches it while running.
#[derive(Debug, Default)]
pub struct ClientStats {
    /// `head` of the client's `ready` frame: it should get every seq above it.
    pub base: i64,
    pub connected: bool,
    /// Which `--url` the client connected to (0-based).
    pub instance: usize,
    /// Connect + handshake + `ready`, in microseconds.
    pub connect_us: u32,
    /// Delivery latency (POST issued -> frame read) of each first delivery, µs.
    pub latency_us: Vec<u32>,
    /// Bit `seq - base - 1` is set once that seq has been received.
    seen: Vec<u64>,
    pub max_seq: i64,
    pub frames: u64,
    pub distinct: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// Frames without this run's marker (other posters in the room).
    pub foreign: u64,
    /// Non-message frames after `ready` (presence, typing, ...).
    pub control: u64,
    /// Message frames of another room.
    pub other_room: u64,
    /// Frames with seq <= base (backlog; should not happen without `after`).
    pub stale: u64,
    /// Connect failure, or why the socket ended before the tool closed it.
    pub error: Option<String>,
}

impl ClientStats {
    pub fn new(base: i64) -> Self {
        Self {
            base,
            max_seq: base,
            connected: true,
            ..Self::default()
        }
    }

    /// A client that never became ready.
    pub fn failed(error: String) -> Self {
        Self {
            error: Some(error),
            ..Self::default()
        }
    }

    /// Records a message frame; `latency_us` is `None` for foreign frames.
    pub fn record(&mut self, seq: i64, latency_us: Option<u64>) {
        self.frames += 1;
        if seq <= self.base {
            self.stale += 1;
            return;
        }
        let bit = (seq - self.base - 1) as usize;
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        if word >= self.seen.len() {
            self.seen.resize(word + 1 + self.seen.len() / 2, 0);
        }
        if self.seen[word] & mask != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= mask;
        self.distinct += 1;
        if seq < self.max_seq {
            self.out_of_order += 1;
        }
        self.max_seq = self.max_seq.max(seq);
        match latency_us {
            Some(us) => self.latency_us.push(us.min(u32::MAX as u64) as u32),
            None => self.foreign += 1,
        }
    }

    /// Seqs in `base+1 ..= head` this client never received.
    pub fn missing(&self, head: i64) -> u64 {
        if !self.connected || head <= self.base {
            return 0;
        }
        let expected = (head - self.base) as u64;
        let got = (0..expected as usize)
            .filter(|&bit| {
                self.seen
                    .get(bit / 64)
                    .is_some_and(|w| w & (1u64 << (bit % 64)) != 0)
            })
            .count() as u64;
        expected - got
    }
}

/// xorshift64*: plenty for room names and message ids.
pub struct Rng(u64);

impl Rng {
    pub fn seeded() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        let local = 0u8;
        let addr = &local as *const u8 as u64;
        let seed = nanos ^ (u64::from(std::process::id()) << 32) ^ addr.rotate_left(17);
        Self(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A random (version 4) UUID, `8-4-4-4-12` lowercase hex.
    pub fn uuid_v4(&mut self) -> String {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next_u64().to_be_bytes());
        b[8..].copy_from_slice(&self.next_u64().to_be_bytes());
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_loss_duplicates_and_order() {
        let mut c = ClientStats::new(10);
        for seq in [11, 12, 14, 13, 13, 200] {
            c.record(seq, Some(5));
        }
        c.record(9, None);
        assert_eq!(c.distinct, 5);
        assert_eq!(c.duplicates, 1);
        assert_eq!(c.out_of_order, 1);
        assert_eq!(c.stale, 1);
        assert_eq!(c.missing(14), 0);
        assert_eq!(c.missing(16), 2);
        assert_eq!(c.missing(200), 200 - 10 - 5);
        assert_eq!(c.latency_us.len(), 5);
    }

    #[test]
    fn uuid_shape() {
        let mut r = Rng::seeded();
        let id = r.uuid_v4();
        assert_eq!(id.len(), 36);
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"));
        assert_ne!(id, r.uuid_v4());
    }
}
