import Glibc
import Logging
import Values

/// The publisher thread's view of its broker connection: one `MosquittoConnection` per attempt, the backoff
/// between attempts, and the messages handed to libmosquitto but not yet delivered (put back in the queue if
/// the connection breaks, so none is lost with it).
struct Link {
    let logger: Logger
    private(set) var connection: MosquittoConnection?
    private(set) var settings = MQTTSettings(host: "", clientID: "")
    private(set) var connected = false
    private(set) var retryAt = ContinuousClock.now
    private(set) var lastError: String?
    /// Newest version of each retained topic published on this connection.
    private(set) var publishedVersions: [String: Int] = [:]
    private var failures = 0
    private var sequence = 0
    private var inFlight: [Int32: (sequence: Int, message: Outbound)] = [:]
    /// Messages libmosquitto refused because the connection had just broken.
    private var unsent: [(sequence: Int, message: Outbound)] = []
    private var pending: [MosquittoConnection.Event] = []

    init(logger: Logger) { self.logger = logger }

    var topics: Topics? { connection == nil ? nil : Topics(prefix: settings.topicPrefix) }
    var inFlightCount: Int { inFlight.count }

    /// Starts a connection attempt (blocking for name resolution, the TCP connect and the TLS handshake, on this
    /// thread only, never the detection path); the broker's answer arrives as an event.
    mutating func open(_ settings: MQTTSettings) {
        self.settings = settings
        do {
            let connection = try MosquittoConnection(settings: settings)
            self.connection = connection
            try connection.connect()
        } catch {
            failed("\(error)")
        }
    }

    mutating func takeEvents() -> [MosquittoConnection.Event] {
        // libmosquitto's own events first: a refusal explains the broken connection that follows it.
        var events = connection?.events ?? []
        connection?.events.removeAll()
        events += pending
        pending.removeAll()
        return events
    }

    mutating func didConnect() {
        connected = true
        failures = 0
        lastError = nil
        publishedVersions.removeAll()
    }

    /// Closes this attempt's client, schedules the next and returns the undelivered non-retained messages, oldest
    /// first (retained ones are republished from the retained state anyway).
    mutating func didDisconnect(reason: String, refused: Bool) -> [Outbound] {
        guard connection != nil else { return [] }
        let requeue = (Array(inFlight.values) + unsent).sorted { $0.sequence < $1.sequence }.map(\.message).filter { !$0.retain }
        failed(refused ? "refused by the broker: \(reason)" : reason)
        return requeue
    }

    /// Whether `mid` was one of ours (and is now delivered).
    mutating func delivered(_ mid: Int32) -> Bool { inFlight.removeValue(forKey: mid) != nil }

    mutating func send(_ message: Outbound) {
        guard let connection else { return }
        switch connection.publish(message) {
        case .success(let mid):
            sequence += 1
            inFlight[mid] = (sequence, message)
            if message.retain { publishedVersions[message.topic] = message.version }
        case .failure(let error):
            // The connection is gone (libmosquitto knows before its callback runs): keep the message.
            sequence += 1
            unsent.append((sequence, message))
            pending.append(.disconnected("\(error)"))
        }
    }

    /// Sleeps until `deadline`, `wake` is signalled, or the socket needs attention, and services the socket.
    mutating func wait(wake: WakePipe, until deadline: ContinuousClock.Instant) {
        let millis = max(0, min(1000, Int(((deadline - .now) / .milliseconds(1)).rounded(.up))))
        var fds = [pollfd(fd: wake.readFD, events: Int16(POLLIN), revents: 0)]
        let socket = connection?.socket ?? -1
        if socket >= 0 {
            fds.append(pollfd(fd: socket, events: Int16(POLLIN) | (connection?.wantsWrite == true ? Int16(POLLOUT) : 0), revents: 0))
        }
        _ = poll(&fds, nfds_t(fds.count), Int32(millis))
        if fds[0].revents != 0 { wake.drain() }
        guard let connection else { return }
        var failure: String?
        if fds.count > 1 && fds[1].revents & Int16(POLLIN | POLLERR | POLLHUP) != 0 {
            // One packet per call; a few more in case TLS decrypted several at once (the socket then stays quiet).
            for _ in 0..<8 where failure == nil { failure = connection.read() }
        }
        if failure == nil && connection.wantsWrite { failure = connection.write() }
        if failure == nil { failure = connection.maintain() }
        if let failure { pending.append(.disconnected(failure)) }
    }

    /// Publishes `goodbye` if connected, waits up to `within` for the broker to acknowledge it, and disconnects.
    mutating func close(goodbye: [Outbound], within: Duration) {
        guard let connection else { return }
        if connected, let wake = try? WakePipe() {
            inFlight.removeAll()
            for message in goodbye { send(message) }
            let deadline = ContinuousClock.now + within
            while connected && !inFlight.isEmpty && ContinuousClock.now < deadline {
                wait(wake: wake, until: deadline)
                for event in takeEvents() {
                    switch event {
                    case .delivered(let mid): _ = delivered(mid)
                    case .connected: break
                    case .refused, .disconnected: connected = false
                    }
                }
            }
            connection.disconnect()
            _ = connection.write()
        }
        self.connection = nil
        connected = false
        inFlight.removeAll()
        unsent.removeAll()
        failures = 0
        retryAt = .now
    }

    private mutating func failed(_ reason: String) {
        connection = nil
        connected = false
        inFlight.removeAll()
        unsent.removeAll()
        failures += 1
        var random = SystemRandomNumberGenerator()
        let delay = Backoff.seconds(failures: failures, ceiling: MQTTPublisher.reconnectMaxSeconds, random: &random)
        retryAt = .now + .milliseconds(Int(delay * 1000))
        // Log a new reason, the first failure, and every retry once the waits have reached the ceiling.
        let atCeiling = Backoff.base(failures: failures, ceiling: MQTTPublisher.reconnectMaxSeconds) == MQTTPublisher.reconnectMaxSeconds
        if lastError != reason || failures == 1 || atCeiling {
            logger.warning("MQTT broker unavailable", metadata: ["broker": "\(settings.host):\(settings.port)",
                                                                 "reason": "\(reason)", "retry_in_s": "\(String(format: "%.1f", delay))"])
        }
        lastError = reason
    }
}

/// A pipe that wakes the publisher's `poll`: written by any thread, drained by the publisher.
final class WakePipe: Sendable {
    let readFD: Int32
    private let writeFD: Int32

    init() throws(MQTTError) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw MQTTError("cannot create a pipe: \(String(cString: strerror(errno)))") }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        readFD = fds[0]
        writeFD = fds[1]
    }

    deinit {
        close(readFD)
        close(writeFD)
    }

    /// Never blocks: a full pipe already means "wake up".
    func signal() {
        var byte: UInt8 = 1
        _ = write(writeFD, &byte, 1)
    }

    func drain() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(readFD, &buffer, buffer.count) > 0 {}
    }
}
