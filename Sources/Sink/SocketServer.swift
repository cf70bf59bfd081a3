import Foundation
import Synchronization
import Values

/// Serves JSON-line records to any number of subscribers on a Unix stream socket.
///
/// Each subscriber first receives the `hello()` line, then every broadcast line, whole and in
/// order. Each has its own bounded queue: a slow subscriber loses its oldest queued lines (and is
/// told so by a `{"type":"lag","dropped":N,"time":...}` record before the next line it does get)
/// instead of slowing the caller or the other subscribers. One that reads nothing for `stuckAfter`
/// while data waits is sent a final `{"type":"error","reason":"too slow",...}` record (if it takes it
/// within `farewellTimeout`) and disconnected; one that reads slowly is never cut off, only told it lags.
/// Beyond `maxSubscribers` connections, a new one gets an `error` record (`too many subscribers`) and is closed.
/// Input from subscribers is read and ignored.
///
/// One I/O thread (poll) does all socket work; `broadcast` only queues under a short lock.
/// Call `close()` when done: the I/O thread keeps the server alive until then.
public final class SocketServer: Sendable {
    public struct Options: Sendable {
        /// Lines queued per subscriber before its oldest are dropped.
        public var queueLimit: Int
        /// A subscriber that accepts no bytes for this long while lines wait is disconnected.
        public var stuckAfter: Duration
        /// Permissions of the socket file (nil: leave what bind() and the umask give).
        public var mode: mode_t?
        /// Group (name or number) to own the socket file (nil: leave it).
        public var group: String?
        /// Connections served at once; never more than half the process's descriptor limit, so subscribers
        /// cannot take the descriptors a camera needs to reopen.
        public var maxSubscribers: Int
        /// How long a subscriber being disconnected (stuck) has to take its final `error` record.
        public var farewellTimeout: Duration

        public init(queueLimit: Int = 1024, stuckAfter: Duration = .seconds(30), mode: mode_t? = 0o660, group: String? = nil,
                    maxSubscribers: Int = 256, farewellTimeout: Duration = .seconds(2)) {
            self.queueLimit = queueLimit
            self.stuckAfter = stuckAfter
            self.mode = mode
            self.group = group
            self.maxSubscribers = maxSubscribers
            self.farewellTimeout = farewellTimeout
        }
    }

    /// Bytes moved from a subscriber's queue into its send buffer at a time.
    static let chunkBytes = 64 * 1024
    /// Kernel send buffer per subscriber (Linux doubles it): small, so the records a lagging reader has yet to read
    /// are mostly in its queue, where the oldest can give way and a `lag` record reaches it soon.
    static let kernelSendBuffer: Int32 = 8 * 1024
    /// How often the socket file is checked for having been deleted (it is then made anew).
    static let fileCheckInterval = Duration.seconds(5)
    private static let wakeByte: UInt8 = 1

    let options: Options
    /// `options.maxSubscribers`, capped at half the descriptor limit.
    let subscriberLimit: Int
    let hello: @Sendable () -> String
    let wakeRead: Int32
    let wakeWrite: Int32
    /// The socket file this server created (and so removes); its identity is in `Shared.ownedFile`.
    let ownedPath: String?
    let shared: Mutex<Shared>
    /// Signalled once, when the I/O thread has closed every descriptor but the wake pipe's.
    let finished = DispatchSemaphore(value: 0)

    /// What the callers' threads and the I/O thread both touch.
    struct Shared {
        /// The lines waiting for each subscriber still served, by `Subscriber.id`.
        var inboxes: [Int: Inbox] = [:]
        var wakePending = false
        var closeDeadline: ContinuousClock.Instant?
        var stuckCount = 0
        var refusedCount = 0
        var fileCheckRequested = false
        /// Identity of the socket file at `ownedPath`; replaced (on the I/O thread) when it is made anew.
        var ownedFile: (dev: UInt64, ino: UInt64)?
    }

    /// Binds `path` and listens. A socket file left by a crashed process is replaced; an existing
    /// path that is not a socket, or a socket another process is listening on, is refused.
    public convenience init(path: String, options: Options = Options(), hello: @escaping @Sendable () -> String) throws {
        let wake = try Self.makeWakePipe()
        let bound: (fd: Int32, dev: UInt64, ino: UInt64)
        do {
            bound = try Self.bindListener(path: path, options: options)
        } catch {
            Glibc.close(wake.read)
            Glibc.close(wake.write)
            throw error
        }
        self.init(listener: bound.fd, wake: wake, ownedPath: path, ownedFile: (bound.dev, bound.ino), options: options, hello: hello)
    }

    /// Serves on an already-listening socket (e.g. one passed by systemd socket activation, see
    /// `SystemdSocketActivation` in Daemon). The server closes the descriptor when it closes; it removes no file.
    public convenience init(listeningDescriptor fd: Int32, options: Options = Options(), hello: @escaping @Sendable () -> String) throws {
        var accepting: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &size) == 0 else {
            throw SinkError("descriptor \(fd) is not a socket: \(SinkError.reason(errno))")
        }
        guard accepting != 0 else { throw SinkError("descriptor \(fd) is not a listening socket") }
        let wake = try Self.makeWakePipe()
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        Self.setNonBlocking(fd)
        self.init(listener: fd, wake: wake, ownedPath: nil, ownedFile: nil, options: options, hello: hello)
    }

    private init(listener: Int32, wake: (read: Int32, write: Int32), ownedPath: String?, ownedFile: (dev: UInt64, ino: UInt64)?,
                 options: Options, hello: @escaping @Sendable () -> String) {
        self.wakeRead = wake.read
        self.wakeWrite = wake.write
        self.ownedPath = ownedPath
        self.shared = Mutex(Shared(ownedFile: ownedFile))
        self.options = options
        var limit = rlimit()
        // RLIM_INFINITY is all ones, so clamping turns it into Int.max as well.
        let descriptors = getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 ? Int(clamping: limit.rlim_cur) : Int.max
        subscriberLimit = max(1, min(options.maxSubscribers, descriptors / 2))
        self.hello = hello
        let thread = Thread(named: "sl-sink") { [self] in EventLoop(server: self, listener: listener).run() }
        thread.start()
    }

    deinit {
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
    }

    /// Queues one JSON line (ending in "\n"; one is added if missing) for every subscriber.
    /// Never waits for I/O.
    public func broadcast(_ line: String) {
        let line = line.utf8.last == 0x0A ? line : line + "\n"
        let wake = shared.withLock { shared in
            guard shared.closeDeadline == nil, !shared.inboxes.isEmpty else { return false }
            var header: (type: String, source: String?)?
            for i in shared.inboxes.values.indices {
                if let subscription = shared.inboxes.values[i].subscription {
                    let (type, source) = header ?? Subscription.header(of: line)
                    header = (type, source)
                    guard subscription.accepts(type: type, source: source) else { continue }
                }
                if shared.inboxes.values[i].queue.push(line) { shared.inboxes.values[i].dropped += 1 }
            }
            let wake = !shared.wakePending
            shared.wakePending = true
            return wake
        }
        if wake { signalWake() }
    }

    /// Subscribers currently connected.
    public var subscriberCount: Int { shared.withLock { $0.inboxes.count } }

    /// Subscribers disconnected because they accepted nothing for `stuckAfter`.
    public var disconnectedStuck: Int { shared.withLock { $0.stuckCount } }

    /// Connections refused because `maxSubscribers` (or half the descriptor limit) were connected.
    public var refusedOverLimit: Int { shared.withLock { $0.refusedCount } }

    /// Stops accepting, sends subscribers what they still have queued (for at most
    /// `flushTimeout`), closes them and the listener, and removes the socket file this server
    /// created. Later broadcasts are ignored. Safe to call more than once.
    public func close(flushTimeout: Duration = .seconds(1)) {
        let first = shared.withLock { shared in
            let first = shared.closeDeadline == nil
            if first { shared.closeDeadline = .now + flushTimeout }
            return first
        }
        signalWake()
        // Passed on, so that every caller of close() returns once the I/O thread is done.
        finished.wait()
        finished.signal()
        if first, let ownedPath, let ownedFile = shared.withLock({ $0.ownedFile }) {
            // Only the file this server bound: a successor may already have replaced it.
            var info = stat()
            if lstat(ownedPath, &info) == 0, UInt64(info.st_dev) == ownedFile.dev, UInt64(info.st_ino) == ownedFile.ino {
                unlink(ownedPath)
            }
        }
    }

    /// Makes the socket file anew if it was deleted (or replaced by a stale one), so clients can connect again;
    /// the server also checks every few seconds by itself. Returns at once; the I/O thread does the work.
    public func checkSocketFile() {
        shared.withLock { $0.fileCheckRequested = true }
        signalWake()
    }

    private func signalWake() {
        var byte = Self.wakeByte
        _ = write(wakeWrite, &byte, 1)
    }
}
