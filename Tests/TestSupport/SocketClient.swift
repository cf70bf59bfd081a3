import Foundation
import Synchronization

/// A subscriber on a Unix stream socket that reads JSON lines, with timeouts.
public final class LineSubscriber {
    /// How long `init` keeps trying to connect: only a hang guard, as a daemon under heavy load can take long to
    /// load its model and listen.
    public static let connectTimeout: TimeInterval = 180

    public let fd: Int32
    private var buffer = Data()
    /// The raw text of the line `next` returned last.
    public private(set) var lastLine = ""

    public init(path: String, timeout: TimeInterval = LineSubscriber.connectTimeout) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
            let ok = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            if ok == 0 {
                self.fd = fd
                return
            }
            close(fd)
            if Date() > deadline { throw ProcessRunError.timedOut("connect \(path)") }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    deinit { close(fd) }

    /// The next line as a JSON object, or nil on timeout or end of stream.
    public func next(timeout: TimeInterval = 60) -> [String: Any]? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = buffer[buffer.startIndex..<newline]
                buffer.removeSubrange(buffer.startIndex...newline)
                lastLine = String(decoding: line, as: UTF8.self)
                return (try? JSONSerialization.jsonObject(with: line)) as? [String: Any] ?? ["unparsable": String(decoding: line, as: UTF8.self)]
            }
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else { return nil }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32(remaining * 1000)) > 0 else { return nil }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = read(fd, &chunk, chunk.count)
            guard n > 0 else { return nil }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }

    /// The next line if one has arrived already, without waiting.
    public func nextIfArrived() -> [String: Any]? {
        if buffer.contains(UInt8(ascii: "\n")) { return next(timeout: 1) }
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, 0) > 0 else { return nil }
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = read(fd, &chunk, chunk.count)
        guard n > 0 else { return nil }
        buffer.append(contentsOf: chunk[0..<n])
        return buffer.contains(UInt8(ascii: "\n")) ? next(timeout: 1) : nil
    }

    /// Reads records until one satisfies `predicate`, for as long as records keep coming: gives up after `idle`
    /// seconds without one, or `atMost` in all (hang guards, for runs whose length depends on the machine's speed).
    public func until(idle: TimeInterval, atMost: TimeInterval = 900,
                      _ predicate: ([String: Any]) -> Bool) -> (match: [String: Any]?, seen: [[String: Any]]) {
        let deadline = Date().addingTimeInterval(atMost)
        var seen: [[String: Any]] = []
        while Date() < deadline, let record = next(timeout: min(idle, max(0, deadline.timeIntervalSinceNow))) {
            if predicate(record) { return (record, seen) }
            seen.append(record)
        }
        return (nil, seen)
    }

    /// Reads records until one satisfies `predicate`; returns it and everything read before it.
    public func until(timeout: TimeInterval, _ predicate: ([String: Any]) -> Bool) -> (match: [String: Any]?, seen: [[String: Any]]) {
        let deadline = Date().addingTimeInterval(timeout)
        var seen: [[String: Any]] = []
        while let record = next(timeout: max(0, deadline.timeIntervalSinceNow)) {
            if predicate(record) { return (record, seen) }
            seen.append(record)
        }
        return (nil, seen)
    }
}

/// A background process (the daemon, an ffmpeg server) that is killed if still running at deinit.
public final class BackgroundProcess {
    public let process = Process()
    private let outputPipe = Pipe(), errorPipe = Pipe()
    private let collected = LockedData(), collectedOutput = LockedData()

    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = outputPipe
        process.standardError = errorPipe
        process.standardInput = FileHandle.nullDevice
        for (pipe, data) in [(errorPipe, collected), (outputPipe, collectedOutput)] {
            pipe.fileHandleForReading.readabilityHandler = { handle in
                let chunk = handle.availableData
                guard !chunk.isEmpty else {
                    // The end: a handler left in place would be called again and again.
                    handle.readabilityHandler = nil
                    return data.markEnded()
                }
                data.append(chunk)
            }
        }
        try process.run()
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        errorPipe.fileHandleForReading.readabilityHandler = nil
        outputPipe.fileHandleForReading.readabilityHandler = nil
    }

    public var stderr: String { String(decoding: collected.data, as: UTF8.self) }
    public var stdout: String { String(decoding: collectedOutput.data, as: UTF8.self) }

    public func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits for exit; returns the status, or nil if still running after `timeout`. On exit it also waits (a few
    /// seconds at most: a child the process left behind may hold its pipes) until both pipes have ended, because the
    /// output is collected asynchronously and the last lines written before exit would otherwise be missed.
    public func wait(timeout: TimeInterval) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        if process.isRunning { return nil }
        process.waitUntilExit()
        let drained = Date().addingTimeInterval(10)
        while !(collected.ended && collectedOutput.ended) && Date() < drained { Thread.sleep(forTimeInterval: 0.01) }
        return process.terminationStatus
    }
}

private final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var stored = Data()
    private var reachedEnd = false
    func append(_ d: Data) { lock.withLock { stored.append(d) } }
    func markEnded() { lock.withLock { reachedEnd = true } }
    var data: Data { lock.withLock { stored } }
    var ended: Bool { lock.withLock { reachedEnd } }
}

/// Ports `freeLoopbackPort` has handed out in this process: the kernel may offer a closed one again, and two
/// servers of one test must not be given the same.
private let handedOutPorts = Mutex<Set<UInt16>>([])

/// A free TCP port on the loopback interface, never one handed out before in this process.
public func freeLoopbackPort() -> UInt16 {
    while true {
        let port = unusedLoopbackPort()
        if handedOutPorts.withLock({ $0.insert(port).inserted }) { return port }
    }
}

private func unusedLoopbackPort() -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return UInt16(bigEndian: address.sin_port)
}
