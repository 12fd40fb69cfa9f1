//! The archiver's one memory budget (`--memory-budget`) and how it is shared between the
//! parts that hold data: ZeroMQ's receive queues, the batch of decoded frames being
//! accepted, the buffered rows (with the copies a flush makes of them), and a seal's rows.
//! A pure function of the budget and the number of endpoints, tested without sockets.
//!
//! ZeroMQ's high-water marks count messages per endpoint, not bytes, so the queue's share
//! is turned into a count with a typical frame size ([`TYPICAL_FRAME_BYTES`]); frames much
//! larger than that can take more, up to `--max-frame-bytes` each. What the budget does not
//! cover: the program itself, the allocator's slack and the kernel's socket buffers. Must
//! not allocate or touch sockets.

/// The default budget, MiB.
pub const DEFAULT_MIB: usize = 96;

/// What a frame of the reference shape (16 cores, 20 processes) takes on the wire, rounded
/// up: the size the receive queue's share is counted in.
pub const TYPICAL_FRAME_BYTES: usize = 2 << 10;

/// Decoded, a frame takes about this many times its wire size (varints widen to 4 or 8
/// bytes, strings get their own allocations).
pub const DECODED_PER_WIRE_BYTE: usize = 4;

/// How a budget is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryShares {
    /// ZMQ_RCVHWM of each endpoint's socket, in frames.
    pub rcvhwm: i32,
    /// Most frames taken from the sockets and held decoded as one batch.
    pub receive_batch: usize,
    /// Buffered rows (column data) at which a flush starts early. The builders' capacity
    /// can be up to twice what they hold, and a flush holds the rows twice more while it
    /// turns them into runs: a quarter of the buffers' share.
    pub buffered_bytes: usize,
    /// Decoded rows a seal holds at a time (its own estimate counts its copies).
    pub seal_bytes: usize,
}

/// Shares `budget_bytes` for `endpoints` endpoints: a quarter for the receive queues, an
/// eighth for the receive batch, a quarter for buffered rows and their flush copies, three
/// eighths for a seal.
pub fn shares(budget_bytes: usize, endpoints: usize) -> MemoryShares {
    let endpoints = endpoints.max(1);
    let queue = budget_bytes / 4;
    let rcvhwm = (queue / endpoints / TYPICAL_FRAME_BYTES).clamp(64, 1_000_000);
    let batch = budget_bytes / 8 / (TYPICAL_FRAME_BYTES * DECODED_PER_WIRE_BYTE);
    MemoryShares {
        rcvhwm: i32::try_from(rcvhwm).unwrap_or(i32::MAX),
        receive_batch: batch.clamp(16, 10_000),
        buffered_bytes: (budget_bytes / 4 / 4).max(1 << 20),
        seal_bytes: (budget_bytes * 3 / 8).max(4 << 20),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_budget_is_shared_and_the_queues_split_by_endpoint() {
        let one = shares(DEFAULT_MIB << 20, 1);
        assert_eq!(one.rcvhwm, 12_288, "24 MiB of 2 KiB frames");
        assert_eq!(one.receive_batch, 1_536);
        assert_eq!(one.buffered_bytes, 6 << 20);
        assert_eq!(one.seal_bytes, 36 << 20);
        let hundred = shares(DEFAULT_MIB << 20, 100);
        assert_eq!(hundred.rcvhwm, 122, "the queues' share is split between endpoints");
        assert_eq!((hundred.buffered_bytes, hundred.seal_bytes), (one.buffered_bytes, one.seal_bytes));
        // Every part fits in the budget together (the queue at typical frame sizes).
        let total = one.rcvhwm as usize * TYPICAL_FRAME_BYTES
            + one.receive_batch * TYPICAL_FRAME_BYTES * DECODED_PER_WIRE_BYTE
            + 4 * one.buffered_bytes
            + one.seal_bytes;
        assert!(total <= DEFAULT_MIB << 20, "{total}");
        let tiny = shares(1 << 20, 1000);
        assert_eq!(tiny.rcvhwm, 64, "never below a useful queue");
    }
}
