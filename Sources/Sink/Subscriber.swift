import Foundation

/// One connected client, as the I/O thread alone sees it; the lines waiting for it are its `Inbox`, in the server's
/// shared state under `id`.
final class Subscriber {
    let fd: Int32
    let id: Int

    /// Bytes committed to this subscriber (whole lines), sent up to `sent`.
    var out: [UInt8] = []
    var sent = 0
    /// The last send hit EAGAIN; wait for POLLOUT before trying again.
    var blocked = false
    /// The peer shut down its sending side; stop polling for input.
    var readClosed = false
    /// The start of a request line not yet ended by its newline.
    var request: [UInt8] = []
    /// The current request line grew too long and is skipped up to its newline.
    var skippingRequest = false
    /// Invalid requests answered with an `error` record; past `Subscription.maxErrors` they are ignored.
    var invalidRequests = 0
    var dead = false
    /// Since when data has been waiting without the subscriber accepting a byte; nil while idle.
    var waitingSince: ContinuousClock.Instant?
    /// Bytes the kernel took that the reader had not read yet, when last looked at (a smaller value means it reads).
    var unread = 0
    /// Set once the subscriber is being disconnected: its final record must go out by then.
    var farewellDeadline: ContinuousClock.Instant?

    /// The first `out` (the hello) has gone out in full.
    var greeted = false
    /// The lag record a refill put at the start of `out`: the count it reports and where it ends.
    var lagAtStart: (dropped: Int, end: Int)?

    /// Drops the records in `out` not yet begun, keeping the one in progress (the hello, before it has gone out) and
    /// never leaving a lag record last; returns how many records that loses, counting those a dropped lag record
    /// reported (for the next lag record to report instead).
    func trimUnsentLines() -> Int {
        func end(ofLineAt index: Int) -> Int? { out[index...].firstIndex(of: 0x0A).map { $0 + 1 } }
        var cut = sent
        if cut == 0 ? !greeted : out[cut - 1] != 0x0A {
            guard let lineEnd = end(ofLineAt: cut) else { return 0 }
            cut = lineEnd
        }
        var reported = 0
        if let lag = lagAtStart {
            if cut == 0 {
                reported = lag.dropped - 1  // its own line is counted below
                lagAtStart = nil
            } else if cut <= lag.end {
                // The lag record is going out: keep the record after it, so two lag records never follow each other.
                guard let lineEnd = end(ofLineAt: cut) else { return 0 }
                cut = lineEnd
            }
        }
        let lines = out[cut...].reduce(0) { $1 == 0x0A ? $0 + 1 : $0 }
        out.removeSubrange(cut...)
        return lines + reported
    }

    init(fd: Int32, id: Int) {
        self.fd = fd
        self.id = id
    }
}

/// The lines waiting for one subscriber: `broadcast` fills it, the I/O thread empties it, both under the server's lock.
struct Inbox {
    var queue: LineQueue
    /// Lines lost to overflow since the last lag record.
    var dropped = 0
    /// What the subscriber asked for; nil: everything.
    var subscription: Subscription?

    init(limit: Int) { queue = LineQueue(limit: limit) }

    /// Moves lines (about `maxBytes` of them, whole) to the end of `lines`; returns how many were lost before them
    /// and starts that count anew.
    mutating func take(upTo maxBytes: Int, into lines: inout [String]) -> Int {
        var bytes = 0
        while bytes < maxBytes, let line = queue.pop() {
            bytes += line.utf8.count
            lines.append(line)
        }
        let lost = dropped
        dropped = 0
        return lost
    }
}
