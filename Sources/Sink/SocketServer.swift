import Foundation

/// Why the socket server could not start. The message names the path or descriptor and the problem.
public struct SinkError: Error, CustomStringConvertible, LocalizedError, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }

    /// `strerror` in lower case, as the rest of a message reads ("permission denied").
    static func reason(_ code: Int32) -> String {
        let text = String(cString: strerror(code))
        guard let first = text.first else { return "error \(code)" }
        return first.lowercased() + text.dropFirst()
    }
}

/// Serves JSON-line records to any number of subscribers on a Unix stream socket.
///
/// Each subscriber first receives the `hello()` line, then every broadcast line, whole and in
/// order. Each has its own bounded queue: a slow subscriber loses its oldest queued lines (and is
/// told so by a `{"type":"lag","dropped":N,"time":...}` record before the next line it does get)
/// instead of slowing the caller or the other subscribers. One that accepts nothing for
/// `stuckAfter` while data waits is disconnected. Input from subscribers is read and ignored.
///
/// One I/O thread (poll) does all socket work; `broadcast` only queues under a short lock.
/// Call `close()` when done: the I/O thread keeps the server alive until then.
public final class SocketServer: @unchecked Sendable {
    public struct Options: Sendable {
        /// Lines queued per subscriber before its oldest are dropped.
        public var queueLimit: Int
        /// A subscriber that accepts no bytes for this long while lines wait is disconnected.
        public var stuckAfter: Duration
        /// Permissions of the socket file (nil: leave what bind() and the umask give).
        public var mode: mode_t?
        /// Group (name or number) to own the socket file (nil: leave it).
        public var group: String?

        public init(queueLimit: Int = 1024, stuckAfter: Duration = .seconds(30), mode: mode_t? = 0o660, group: String? = nil) {
            self.queueLimit = queueLimit
            self.stuckAfter = stuckAfter
            self.mode = mode
            self.group = group
        }
    }

    /// Bytes moved from a subscriber's queue into its send buffer at a time.
    private static let chunkBytes = 64 * 1024
    private static let wakeByte: UInt8 = 1

    private let options: Options
    private let hello: @Sendable () -> String
    private let listener: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32
    /// The socket file this server created (and so removes), with its identity.
    private let ownedPath: String?
    private let ownedFile: (dev: UInt64, ino: UInt64)?

    // Guarded by `lock`.
    private let lock = NSLock()
    private var subscribers: [Subscriber] = []
    private var wakePending = false
    private var closeDeadline: ContinuousClock.Instant?
    private var stuckCount = 0

    private let done = NSCondition()
    private var finished = false  // guarded by `done`

    // I/O thread only.
    private var active: [Subscriber] = []
    private var pollSet: [pollfd] = []
    private var popped: [String] = []
    private var input = [UInt8](repeating: 0, count: 4096)
    private var listenerOpen = true
    private var acceptPausedUntil: ContinuousClock.Instant?

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
        self.listener = listener
        self.wakeRead = wake.read
        self.wakeWrite = wake.write
        self.ownedPath = ownedPath
        self.ownedFile = ownedFile
        self.options = options
        self.hello = hello
        popped.reserveCapacity(256)
        let thread = Thread { [self] in self.run() }
        thread.name = "sightline-sink"
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
        lock.lock()
        guard closeDeadline == nil, !subscribers.isEmpty else {
            lock.unlock()
            return
        }
        for subscriber in subscribers where subscriber.queue.push(line) {
            subscriber.dropped += 1
        }
        let wake = !wakePending
        wakePending = true
        lock.unlock()
        if wake { signalWake() }
    }

    /// Subscribers currently connected.
    public var subscriberCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return subscribers.count
    }

    /// Subscribers disconnected because they accepted nothing for `stuckAfter`.
    public var disconnectedStuck: Int {
        lock.lock()
        defer { lock.unlock() }
        return stuckCount
    }

    /// Stops accepting, sends subscribers what they still have queued (for at most
    /// `flushTimeout`), closes them and the listener, and removes the socket file this server
    /// created. Later broadcasts are ignored. Safe to call more than once.
    public func close(flushTimeout: Duration = .seconds(1)) {
        lock.lock()
        let first = closeDeadline == nil
        if first { closeDeadline = .now + flushTimeout }
        lock.unlock()
        signalWake()
        done.lock()
        while !finished { done.wait() }
        done.unlock()
        if first, let ownedPath, let ownedFile {
            // Only the file this server bound: a successor may already have replaced it.
            var info = stat()
            if lstat(ownedPath, &info) == 0, UInt64(info.st_dev) == ownedFile.dev, UInt64(info.st_ino) == ownedFile.ino {
                unlink(ownedPath)
            }
        }
    }

    private func signalWake() {
        var byte = Self.wakeByte
        _ = write(wakeWrite, &byte, 1)
    }

    // MARK: - I/O thread

    private func run() {
        while true {
            let now = ContinuousClock.now
            pollSet.removeAll(keepingCapacity: true)
            pollSet.append(pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0))
            var listenIndex = -1
            if listenerOpen, acceptPausedUntil.map({ now >= $0 }) ?? true {
                acceptPausedUntil = nil
                listenIndex = pollSet.count
                pollSet.append(pollfd(fd: listener, events: Int16(POLLIN), revents: 0))
            }
            let base = pollSet.count
            for subscriber in active {
                var events: Int16 = 0
                if !subscriber.readClosed { events |= Int16(POLLIN) }
                if subscriber.blocked { events |= Int16(POLLOUT) }
                pollSet.append(pollfd(fd: subscriber.fd, events: events, revents: 0))
            }

            lock.lock()
            let closing = closeDeadline
            lock.unlock()

            let ready = poll(&pollSet, nfds_t(pollSet.count), timeoutMillis(now: now, closing: closing))
            if ready < 0, errno != EINTR {
                // Nothing sensible to do but not spin.
                usleep(10_000)
            }
            let woke = ContinuousClock.now

            if pollSet[0].revents != 0 {
                drainWakePipe()
                lock.lock()
                wakePending = false
                lock.unlock()
            }
            lock.lock()
            let closingNow = closeDeadline
            lock.unlock()

            // Subscriber events (indices match `active` as it was when the poll set was built).
            for (i, subscriber) in active.enumerated() {
                let revents = Int32(pollSet[base + i].revents)
                if revents & (POLLERR | POLLHUP | POLLNVAL) != 0 {
                    subscriber.dead = true
                    continue
                }
                if revents & POLLIN != 0 { drainInput(subscriber) }
                if revents & POLLOUT != 0 { subscriber.blocked = false }
            }

            if closingNow != nil, listenerOpen {
                Glibc.close(listener)
                listenerOpen = false
            } else if listenIndex >= 0, pollSet[listenIndex].revents != 0 {
                acceptAll(now: woke)
            }

            var stuck = 0
            for subscriber in active where !subscriber.dead {
                if !subscriber.blocked { flush(subscriber) }
                if !subscriber.dead, let since = subscriber.waitingSince, woke - since >= options.stuckAfter {
                    subscriber.dead = true
                    stuck += 1
                }
            }
            removeDead(stuck: stuck)

            if let closingNow {
                let idle = active.allSatisfy { $0.waitingSince == nil }
                if idle || ContinuousClock.now >= closingNow {
                    for subscriber in active { Glibc.close(subscriber.fd) }
                    active.removeAll()
                    lock.lock()
                    subscribers.removeAll()
                    lock.unlock()
                    break
                }
            }
        }
        if listenerOpen {
            Glibc.close(listener)
            listenerOpen = false
        }
        done.lock()
        finished = true
        done.broadcast()
        done.unlock()
    }

    /// Until the nearest stuck deadline, flush deadline or accept retry; -1 when none.
    private func timeoutMillis(now: ContinuousClock.Instant, closing: ContinuousClock.Instant?) -> Int32 {
        var deadline = closing
        if let paused = acceptPausedUntil { deadline = min(deadline ?? paused, paused) }
        for subscriber in active {
            if let since = subscriber.waitingSince {
                let due = since + options.stuckAfter
                deadline = min(deadline ?? due, due)
            }
        }
        guard let deadline else { return -1 }
        let wait = deadline - now
        if wait <= .zero { return 0 }
        let (seconds, attoseconds) = wait.components
        let millis = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: millis)
    }

    private func drainWakePipe() {
        var sink = [UInt8](repeating: 0, count: 64)
        while true {
            let n = read(wakeRead, &sink, sink.count)
            if n > 0 { continue }
            if n < 0, errno == EINTR { continue }
            return
        }
    }

    private func drainInput(_ subscriber: Subscriber) {
        for _ in 0..<16 {
            let n = input.withUnsafeMutableBytes { recv(subscriber.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 { continue }
            if n == 0 {
                subscriber.readClosed = true
                return
            }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return
            default:
                subscriber.dead = true
                return
            }
        }
    }

    private func acceptAll(now: ContinuousClock.Instant) {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                switch errno {
                case EINTR, ECONNABORTED: continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    // The connection stays in the backlog; try again shortly rather than spin.
                    acceptPausedUntil = now + .milliseconds(100)
                    return
                default: return
                }
            }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            Self.setNonBlocking(fd)
            let subscriber = Subscriber(fd: fd, limit: options.queueLimit)
            // Registered before its hello is made, so it misses no line broadcast after the hello:
            // broadcasts only queue, and the hello goes out ahead of the queue.
            lock.lock()
            subscribers.append(subscriber)
            lock.unlock()
            var greeting = hello()
            if greeting.utf8.last != 0x0A { greeting += "\n" }
            subscriber.out.reserveCapacity(Self.chunkBytes + 4096)
            subscriber.out.append(contentsOf: greeting.utf8)
            active.append(subscriber)
        }
    }

    /// Sends as much as the socket takes; refills from the queue between chunks.
    private func flush(_ subscriber: Subscriber) {
        while true {
            if subscriber.sent == subscriber.out.count {
                subscriber.out.removeAll(keepingCapacity: true)
                subscriber.sent = 0
                refill(subscriber)
                if subscriber.out.isEmpty {
                    subscriber.waitingSince = nil
                    return
                }
                if subscriber.waitingSince == nil { subscriber.waitingSince = .now }
            } else if subscriber.waitingSince == nil {
                subscriber.waitingSince = .now  // a new subscriber's hello
            }
            let n = subscriber.out.withUnsafeBytes { bytes in
                send(subscriber.fd, bytes.baseAddress! + subscriber.sent, bytes.count - subscriber.sent,
                     Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            }
            if n > 0 {
                subscriber.sent += n
                subscriber.waitingSince = .now
                continue
            }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK:
                subscriber.blocked = true
                return
            default:  // EPIPE, ECONNRESET, ...: the subscriber is gone.
                subscriber.dead = true
                return
            }
        }
    }

    /// Moves queued lines (up to about `chunkBytes`) into the send buffer, preceded by a lag
    /// record if lines were dropped before them.
    private func refill(_ subscriber: Subscriber) {
        var bytes = 0
        lock.lock()
        let dropped = subscriber.dropped
        subscriber.dropped = 0
        while bytes < Self.chunkBytes, let line = subscriber.queue.pop() {
            bytes += line.utf8.count
            popped.append(line)
        }
        lock.unlock()
        if dropped > 0 {
            var lag = JSONLineWriter()
            lag.field("type", "lag")
            lag.field("dropped", dropped)
            lag.field("time", RFC3339.format(Date()))
            subscriber.out.append(contentsOf: lag.finish().utf8)
            subscriber.out.append(0x0A)
        }
        for line in popped { subscriber.out.append(contentsOf: line.utf8) }
        popped.removeAll(keepingCapacity: true)
    }

    private func removeDead(stuck: Int) {
        guard active.contains(where: { $0.dead }) else { return }
        for subscriber in active where subscriber.dead { Glibc.close(subscriber.fd) }
        active.removeAll { $0.dead }
        let remaining = active
        lock.lock()
        subscribers = remaining
        stuckCount += stuck
        lock.unlock()
    }

    // MARK: - Setup

    private static func makeWakePipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            throw SinkError("cannot create the socket server's wake pipe: \(SinkError.reason(errno))")
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            setNonBlocking(fd)
        }
        return (fds[0], fds[1])
    }

    private static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
    }

    private static func unixAddress(_ path: String) throws -> (sockaddr_un, socklen_t) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty else { throw SinkError("socket path is empty") }
        guard !bytes.contains(0) else { throw SinkError("socket path \(path) contains a NUL byte") }
        guard bytes.count < capacity else {
            throw SinkError("socket path \(path) is too long (\(bytes.count) bytes; at most \(capacity - 1))")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return (address, socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1))
    }

    private static func withSockaddr<R>(_ address: inout sockaddr_un, _ body: (UnsafePointer<sockaddr>) -> R) -> R {
        withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1, body) }
    }

    private static func newSocket(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SinkError("cannot create socket at \(path): \(SinkError.reason(errno))") }
        return fd
    }

    /// The id of group `name` (a name or a number); throws `SinkError` naming an unknown group.
    public static func resolveGroup(_ name: String) throws -> gid_t {
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 16384)
        let status = getgrnam_r(name, &entry, &buffer, buffer.count, &result)
        if status == 0, let result { return result.pointee.gr_gid }
        if let number = gid_t(name) { return number }
        if status != 0 { throw SinkError("cannot look up group \(name): \(SinkError.reason(status))") }
        throw SinkError("unknown group \(name)")
    }

    /// Binds and listens on `path`, replacing a stale socket file; returns the descriptor and the
    /// identity of the file it created.
    private static func bindListener(path: String, options: Options) throws -> (fd: Int32, dev: UInt64, ino: UInt64) {
        var (address, length) = try unixAddress(path)
        let gid = try options.group.map(resolveGroup)

        var info = stat()
        if lstat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFSOCK else {
                throw SinkError("cannot create socket at \(path): the path exists and is not a socket")
            }
            // A socket file: live if someone accepts connections on it, stale if refused.
            let probe = try newSocket(path)
            setNonBlocking(probe)
            let status = withSockaddr(&address) { connect(probe, $0, length) }
            let code = errno
            Glibc.close(probe)
            if status == 0 || code == EAGAIN || code == EINPROGRESS {
                throw SinkError("cannot create socket at \(path): another process is listening there")
            }
            switch code {
            case ECONNREFUSED:
                if unlink(path) != 0, errno != ENOENT {
                    throw SinkError("cannot replace stale socket at \(path): \(SinkError.reason(errno))")
                }
            case ENOENT:
                break  // removed meanwhile
            default:
                throw SinkError("cannot create socket at \(path): existing socket is unusable: \(SinkError.reason(code))")
            }
        }

        let fd = try newSocket(path)
        func fail(_ message: String, unlinking: Bool) -> SinkError {
            Glibc.close(fd)
            if unlinking { unlink(path) }
            return SinkError(message)
        }
        if withSockaddr(&address, { bind(fd, $0, length) }) != 0 {
            let code = errno
            if code == EADDRINUSE {
                throw fail("cannot create socket at \(path): another process is listening there", unlinking: false)
            }
            throw fail("cannot create socket at \(path): \(SinkError.reason(code))", unlinking: false)
        }
        // Nobody can connect before listen(), so fixing ownership and mode first leaves no window.
        if let mode = options.mode, chmod(path, mode) != 0 {
            throw fail("cannot set mode \(String(mode, radix: 8)) on socket \(path): \(SinkError.reason(errno))", unlinking: true)
        }
        if let gid, chown(path, uid_t.max, gid) != 0 {
            throw fail("cannot set group \(options.group ?? "") on socket \(path): \(SinkError.reason(errno))", unlinking: true)
        }
        guard lstat(path, &info) == 0 else {
            throw fail("cannot create socket at \(path): \(SinkError.reason(errno))", unlinking: true)
        }
        guard listen(fd, 64) == 0 else {
            throw fail("cannot listen on socket \(path): \(SinkError.reason(errno))", unlinking: true)
        }
        setNonBlocking(fd)
        return (fd, UInt64(info.st_dev), UInt64(info.st_ino))
    }
}
