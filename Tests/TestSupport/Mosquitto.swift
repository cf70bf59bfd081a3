import Foundation

/// A real Mosquitto broker (Debian `mosquitto`) on a free loopback port, with its own config in a temporary
/// directory; stopped at deinit. `stop()`/`start()` restart it on the same port (sessions survive with `persistence`).
public final class MosquittoBroker {
    public static let executable = "/usr/sbin/mosquitto"
    public let port: UInt16
    public let directory: URL
    private let configPath: String
    private var process: BackgroundProcess?

    /// `extra` lines go after the listener line (e.g. `password_file`, `cafile`/`certfile`/`keyfile`).
    public init(extra: [String] = [], persistence: Bool = false) throws {
        directory = try TestPaths.temporaryDirectory()
        port = freeLoopbackPort()
        configPath = directory.appendingPathComponent("mosquitto.conf").path
        var lines = ["listener \(port) 127.0.0.1"] + extra
        if !extra.contains(where: { $0.hasPrefix("password_file") }) { lines.append("allow_anonymous true") }
        // As root mosquitto would switch to the `mosquitto` user, which cannot read this directory's key files.
        lines += ["user root", "log_dest stderr", "log_type error", "log_type warning",
                  "persistence \(persistence)", "persistence_location \(directory.path)/"]
        try (lines.joined(separator: "\n") + "\n").write(toFile: configPath, atomically: true, encoding: .utf8)
        try start()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    /// Starts the broker and waits until it accepts connections.
    public func start() throws {
        let process = try BackgroundProcess(Self.executable, ["-c", configPath])
        self.process = process
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if !process.process.isRunning { throw BrokerError.exited(process.stderr) }
            if Self.accepts(port: port) { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw BrokerError.notListening(process.stderr)
    }

    /// SIGTERM (mosquitto saves its persistence file) and waits for the exit.
    public func stop() {
        guard let process else { return }
        process.signal(SIGTERM)
        _ = process.wait(timeout: 30)
        self.process = nil
    }

    public var log: String { process?.stderr ?? "" }

    public enum BrokerError: Error { case exited(String), notListening(String) }

    private static func accepts(port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}

/// `mosquitto_sub` on a broker, every message collected as (retained, topic, payload).
public final class MQTTSubscriber {
    public struct Message: Sendable, Equatable {
        public var retained: Bool
        public var topic: String
        public var payload: String

        /// The payload as a JSON object, or nil.
        public var json: [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(payload.utf8))) as? [String: Any]
        }
    }

    private let process: BackgroundProcess

    /// `arguments` add to the connection (e.g. `-u`, `--cafile`); a persistent `clientID` keeps QoS 1 messages for it
    /// while it or the broker is away.
    public init(port: UInt16, topics: [String] = ["#"], clientID: String? = nil, arguments: [String] = []) throws {
        var args = ["-h", "127.0.0.1", "-p", String(port), "-q", "1", "-F", "%r\t%t\t%p"]
        if let clientID { args += ["-i", clientID, "-c"] }
        for topic in topics { args += ["-t", topic] }
        process = try BackgroundProcess("/usr/bin/mosquitto_sub", args + arguments)
    }

    public var messages: [Message] {
        process.stdout.split(separator: "\n", omittingEmptySubsequences: true).compactMap { line in
            let parts = line.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count >= 2 else { return nil }
            return Message(retained: parts[0] == "1", topic: String(parts[1]), payload: parts.count > 2 ? String(parts[2]) : "")
        }
    }

    public func messages(on topic: String) -> [Message] { messages.filter { $0.topic == topic } }

    public var stderr: String { process.stderr }

    /// Publishes a probe on `topic` (one the subscription matches) until it comes back: from then on the subscription
    /// is in place, and nothing published later can be missed by arriving before it.
    @discardableResult
    public func waitUntilSubscribed(port: UInt16, probe topic: String, timeout: TimeInterval = 60) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            _ = try? runProcess("/usr/bin/mosquitto_pub", ["-h", "127.0.0.1", "-p", String(port), "-t", topic, "-m", "probe"], timeout: 10)
            if waitUntil(timeout: 1, { $0.contains { $0.topic == topic } }) { return true }
        }
        return false
    }

    /// Waits (at most `timeout`, a bound for a broken run, not a speed requirement) until `predicate` holds.
    @discardableResult
    public func waitUntil(timeout: TimeInterval = 60, _ predicate: ([Message]) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if predicate(messages) { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return predicate(messages)
    }

    public func stop() {
        process.signal(SIGTERM)
        _ = process.wait(timeout: 10)
    }
}

/// Waits (at most `timeout`) until `condition` holds.
@discardableResult
public func eventually(timeout: TimeInterval = 60, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.05)
    }
    return condition()
}
