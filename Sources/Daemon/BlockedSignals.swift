import Foundation

/// Termination and reload signals taken synchronously, one at a time, by a thread that waits for them
/// (sigwait), not by handlers or libdispatch signal sources (whose worker threads call setpriority(2),
/// which the unit's system call filter denies). Create it first thing, before any other thread starts:
/// the signals are blocked in the calling thread, and threads inherit the mask.
public struct BlockedSignals: Sendable {
    private let signals: [Int32]

    public init(_ signals: [Int32]) {
        self.signals = signals
        var set = Self.set(of: signals)
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Waits for the next of the signals; one that arrived while busy is still pending and comes next.
    public func next() -> Int32 {
        var set = Self.set(of: signals)
        var received: Int32 = 0
        while sigwait(&set, &received) != 0 {}
        return received
    }

    private static func set(of signals: [Int32]) -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
        return set
    }
}
