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
/// instead of slowing the caller or the other subscribers. One that reads nothing for `stuckAfter`
/// while data waits is sent a final `{"type":"error","reason":"too slow",...}` record (if it takes it
/// within `farewellTimeout`) and disconnected; one that reads slowly is never cut off, only told it lags.
/// Beyond `maxSubscribers` connections, a new one gets an `error` record (`too many subscribers`) and is closed.
/// Input from subscribers is read and ignored.
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
    private static let chunkBytes = 64 * 1024
    /// Kernel send buffer per subscriber (Linux doubles it): small, so the records a lagging reader has yet to read
    /// are mostly in its queue, where the oldest can give way and a `lag` record reaches it soon.
    private static let kernelSendBuffer: Int32 = 8 * 1024
    /// How often the socket file is checked for having been deleted (it is then made anew).
    private static let fileCheckInterval = Duration.seconds(5)
    private static let wakeByte: UInt8 = 1

    private let options: Options
    /// `options.maxSubscribers`, capped at half the descriptor limit.
    private let subscriberLimit: Int
    private let hello: @Sendable () -> String
    /// Replaced (on the I/O thread) when the socket file was deleted and is made anew.
    private var listener: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32
    /// The socket file this server created (and so removes), with its identity.
    private let ownedPath: String?
    private var ownedFile: (dev: UInt64, ino: UInt64)?

    // Guarded by `lock`.
    private let lock = NSLock()
    private var subscribers: [Subscriber] = []
    private var wakePending = false
    private var closeDeadline: ContinuousClock.Instant?
    private var stuckCount = 0
    private var refusedCount = 0
    private var fileCheckRequested = false

    private let done = NSCondition()
    private var finished = false  // guarded by `done`

    // I/O thread only.
    private var active: [Subscriber] = []
    private var pollSet: [pollfd] = []
    private var popped: [String] = []
    private var input = [UInt8](repeating: 0, count: 4096)
    private var listenerOpen = true
    private var nextFileCheck = ContinuousClock.now + SocketServer.fileCheckInterval
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
        var limit = rlimit()
        // RLIM_INFINITY is all ones, so clamping turns it into Int.max as well.
        let descriptors = getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 ? Int(clamping: limit.rlim_cur) : Int.max
        subscriberLimit = max(1, min(options.maxSubscribers, descriptors / 2))
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

    /// Connections refused because `maxSubscribers` (or half the descriptor limit) were connected.
    public var refusedOverLimit: Int {
        lock.lock()
        defer { lock.unlock() }
        return refusedCount
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

    /// Makes the socket file anew if it was deleted (or replaced by a stale one), so clients can connect again;
    /// the server also checks every few seconds by itself. Returns at once; the I/O thread does the work.
    public func checkSocketFile() {
        lock.lock()
        fileCheckRequested = true
        lock.unlock()
        signalWake()
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
            let checkFile = fileCheckRequested
            fileCheckRequested = false
            lock.unlock()
            if closing == nil, checkFile || now >= nextFileCheck {
                restoreSocketFileIfGone()
                nextFileCheck = now + Self.fileCheckInterval
            }

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

            // A subscriber that lost lines gets its lag record next: the unsent lines already taken from its
            // queue are older than the ones it lost, so they give way too.
            lock.lock()
            let lagging = active.filter { $0.dropped > 0 && $0.farewellDeadline == nil }
            lock.unlock()
            for subscriber in lagging {
                let trimmed = subscriber.trimUnsentLines()
                if trimmed > 0 {
                    lock.lock()
                    subscriber.dropped += trimmed
                    lock.unlock()
                }
            }

            for subscriber in active where !subscriber.dead {
                if !subscriber.blocked { flush(subscriber) }
                if subscriber.dead { continue }
                if let deadline = subscriber.farewellDeadline {
                    if subscriber.out.isEmpty || woke >= deadline { subscriber.dead = true }
                } else if let since = subscriber.waitingSince, woke - since >= options.stuckAfter {
                    // Reading, if slowly: what it has not read yet of what the kernel took went down.
                    let unread = Self.unreadBytes(subscriber.fd)
                    if unread < subscriber.unread {
                        subscriber.waitingSince = woke
                    } else {
                        bidFarewell(subscriber, now: woke)
                    }
                    subscriber.unread = unread
                }
            }
            removeDead()

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

    /// Until the nearest stuck deadline, farewell deadline, flush deadline or accept retry; -1 when none.
    private func timeoutMillis(now: ContinuousClock.Instant, closing: ContinuousClock.Instant?) -> Int32 {
        var deadline = closing
        if ownedPath != nil { deadline = min(deadline ?? nextFileCheck, nextFileCheck) }
        if let paused = acceptPausedUntil { deadline = min(deadline ?? paused, paused) }
        for subscriber in active {
            if let due = subscriber.farewellDeadline ?? subscriber.waitingSince.map({ $0 + options.stuckAfter }) {
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

    /// Binds a new listener at the socket path if the file this server made is gone, unless the path now belongs
    /// to something else (a live socket of another process, a file that is not a socket).
    private func restoreSocketFileIfGone() {
        guard let ownedPath, let ownedFile, listenerOpen else { return }
        var info = stat()
        if lstat(ownedPath, &info) == 0, UInt64(info.st_dev) == ownedFile.dev, UInt64(info.st_ino) == ownedFile.ino { return }
        guard let bound = try? Self.bindListener(path: ownedPath, options: options) else { return }
        Glibc.close(listener)
        listener = bound.fd
        self.ownedFile = (bound.dev, bound.ino)
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
            guard active.count < subscriberLimit else {
                // Counted before the client can see its end, so whoever saw the refusal sees it counted.
                lock.lock()
                refusedCount += 1
                lock.unlock()
                // A fresh socket's buffer is empty: the record goes out whole, or not at all.
                let refusal = Self.errorRecord(reason: "too many subscribers", extra: { $0.field("limit", self.subscriberLimit) })
                _ = refusal.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
                Glibc.close(fd)
                continue
            }
            var sendBuffer = Self.kernelSendBuffer
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sendBuffer, socklen_t(MemoryLayout<Int32>.size))
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
                subscriber.greeted = true
                subscriber.lagAtStart = nil
                if subscriber.farewellDeadline != nil { return }  // its final record is out
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
                subscriber.unread = Self.unreadBytes(subscriber.fd)
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
            subscriber.lagAtStart = (dropped, subscriber.out.count)
        }
        for line in popped { subscriber.out.append(contentsOf: line.utf8) }
        popped.removeAll(keepingCapacity: true)
    }

    /// Stops serving a subscriber that reads nothing: it leaves the broadcast list, loses what it has not been sent
    /// (after the line in progress) and gets a final `error` record, if it takes it within `farewellTimeout`.
    private func bidFarewell(_ subscriber: Subscriber, now: ContinuousClock.Instant) {
        lock.lock()
        subscribers.removeAll { $0 === subscriber }
        stuckCount += 1
        let lost = subscriber.dropped + subscriber.queue.count
        lock.unlock()
        let trimmed = subscriber.trimUnsentLines()
        subscriber.out.append(contentsOf: Self.errorRecord(reason: "too slow") {
            $0.field("dropped", lost + trimmed)
            $0.field("detail", "read nothing for \(self.options.stuckAfter) while records waited; disconnected")
        })
        subscriber.farewellDeadline = now + options.farewellTimeout
        subscriber.waitingSince = nil
    }

    /// `{"type":"error","reason":...,"time":...}` and a newline.
    private static func errorRecord(reason: String, extra: (inout JSONLineWriter) -> Void = { _ in }) -> [UInt8] {
        var record = JSONLineWriter()
        record.field("type", "error")
        record.field("reason", reason)
        extra(&record)
        record.field("time", RFC3339.format(Date()))
        return Array((record.finish() + "\n").utf8)
    }

    /// Bytes sent to `fd` that its reader has not read yet (SIOCOUTQ).
    private static func unreadBytes(_ fd: Int32) -> Int {
        var unread: Int32 = 0
        return ioctl(fd, UInt(TIOCOUTQ), &unread) == 0 ? Int(unread) : 0
    }

    private func removeDead() {
        guard active.contains(where: { $0.dead }) else { return }
        for subscriber in active where subscriber.dead { Glibc.close(subscriber.fd) }
        active.removeAll { $0.dead }
        let remaining = active.filter { $0.farewellDeadline == nil }  // those being let go get no more broadcasts
        lock.lock()
        subscribers = remaining
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
