#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// sd_notify(3) without libsystemd: state datagrams to the AF_UNIX socket named by `NOTIFY_SOCKET`.
///
/// Without `NOTIFY_SOCKET` (not started by systemd, or not `Type=notify`) every call is a no-op. The environment
/// is an init parameter so tests need not touch the process's own.
public struct SystemdNotifier: Sendable {
    /// The socket address as given in `NOTIFY_SOCKET` (a leading `@` means the abstract namespace); nil: disabled.
    public let socketPath: String?
    /// `WATCHDOG_USEC`, when it applies to this process (`WATCHDOG_PID` unset or ours); ping at least every half of it.
    public let watchdogInterval: Duration?

    public struct Failure: Error, CustomStringConvertible, Sendable, Equatable {
        public let message: String
        public var description: String { message }
    }

    public init(environment: [String: String] = ProcessInfo.processInfo.environment, pid: Int32 = getpid()) {
        if let path = environment["NOTIFY_SOCKET"], path.hasPrefix("/") || path.hasPrefix("@"), path.utf8.count > 1 {
            socketPath = path
        } else {
            socketPath = nil  // unset, empty, or a kind of address (vsock:) this client does not speak
        }
        watchdogInterval = Self.watchdogInterval(environment: environment, pid: pid)
    }

    /// Whether notifications go anywhere.
    public var isEnabled: Bool { socketPath != nil }

    /// Half the watchdog interval: how often `watchdog()` should be called; nil when there is no watchdog.
    public var watchdogPingInterval: Duration? { watchdogInterval.map { $0 / 2 } }

    /// Startup finished (also after a reload: `reloading()`, reload, then `ready()`).
    public func ready() throws(Failure) { try notify("READY=1") }

    /// Free-form status shown by `systemctl status`. Newlines are replaced: each line of a datagram is one assignment.
    public func status(_ text: String) throws(Failure) {
        try notify("STATUS=" + text.replacingOccurrences(of: "\n", with: " "))
    }

    /// Keep-alive for `WatchdogSec=`.
    public func watchdog() throws(Failure) { try notify("WATCHDOG=1") }

    /// Shutting down.
    public func stopping() throws(Failure) { try notify("STOPPING=1") }

    /// Reloading the configuration; send `ready()` when done. Carries MONOTONIC_USEC as `Type=notify-reload` requires.
    public func reloading() throws(Failure) {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let usec = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
        try notify("RELOADING=1\nMONOTONIC_USEC=\(usec)")
    }

    /// Sends `state` (newline-separated assignments) as one datagram; does nothing when disabled.
    public func notify(_ state: String) throws(Failure) {
        guard let socketPath else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(message: "sd_notify: socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }

        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var pathBytes = Array(socketPath.utf8)
        let abstract = pathBytes.first == UInt8(ascii: "@")
        if abstract { pathBytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        // A filesystem path needs room for its terminating NUL; an abstract name is counted exactly.
        guard pathBytes.count <= capacity - (abstract ? 0 : 1) else {
            throw Failure(message: "sd_notify: NOTIFY_SOCKET is too long: \(socketPath)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
        }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + pathBytes.count + (abstract ? 0 : 1))

        let bytes = Array(state.utf8)
        var sent: Int
        repeat {
            sent = bytes.withUnsafeBytes { buffer in
                withUnsafePointer(to: &address) { pointer in
                    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL), $0, length)
                    }
                }
            }
        } while sent < 0 && errno == EINTR
        guard sent == bytes.count else {
            let reason = sent < 0 ? String(cString: strerror(errno)) : "short write (\(sent) of \(bytes.count) bytes)"
            throw Failure(message: "sd_notify to \(socketPath): \(reason)")
        }
    }

    static func watchdogInterval(environment: [String: String], pid: Int32) -> Duration? {
        guard let text = environment["WATCHDOG_USEC"], let usec = UInt64(text), usec > 0, usec < UInt64(Int64.max) else {
            return nil
        }
        if let owner = environment["WATCHDOG_PID"], !owner.isEmpty {
            guard let ownerPID = Int32(owner), ownerPID == pid else { return nil }
        }
        return .microseconds(Int64(usec))
    }
}

/// sd_listen_fds(3) without libsystemd: the sockets systemd passed to this process by socket activation.
public enum SystemdSocketActivation {
    /// The first passed descriptor; the others follow it.
    public static let firstDescriptor: Int32 = 3

    /// One passed descriptor and its `FileDescriptorName=` (systemd names them after the socket unit by default).
    public struct ListenDescriptor: Sendable, Equatable {
        public let fd: Int32
        public let name: String?

        public init(fd: Int32, name: String?) {
            self.fd = fd
            self.name = name
        }
    }

    /// The descriptors passed via `LISTEN_FDS`, if `LISTEN_PID` is this process; empty otherwise. Marks them
    /// close-on-exec (as sd_listen_fds does) unless `setCloseOnExec` is false.
    public static func listenDescriptors(environment: [String: String] = ProcessInfo.processInfo.environment,
                                         pid: Int32 = getpid(), setCloseOnExec: Bool = true) -> [ListenDescriptor] {
        guard let pidText = environment["LISTEN_PID"], let listenPID = Int32(pidText), listenPID == pid,
              let countText = environment["LISTEN_FDS"], let count = Int32(countText), count > 0, count < 4096 else {
            return []
        }
        let names = environment["LISTEN_FDNAMES"].map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
        return (0..<count).map { index in
            let fd = firstDescriptor + index
            if setCloseOnExec {
                let flags = fcntl(fd, F_GETFD)
                if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
            }
            let name = names.flatMap { Int(index) < $0.count ? $0[Int(index)] : nil }
            return ListenDescriptor(fd: fd, name: name)
        }
    }

    /// The passed descriptors by purpose, told apart by name: `http` is the HTTP server's (sightline-http.socket);
    /// `subscribers`, `sightline.socket` (systemd's default name for sightline.socket), or no name at all
    /// (no `LISTEN_FDNAMES`, which sd_listen_fds_with_names(3) reports as `unknown`) the subscriber socket's.
    public struct Passed: Sendable, Equatable {
        public var subscribers: ListenDescriptor?
        public var http: ListenDescriptor?
        /// Any other name, and a second one for the same purpose: to be warned about and closed.
        public var unknown: [ListenDescriptor] = []

        public static let httpName = "http"
        public static let subscriberNames: Set<String?> = [nil, "unknown", "subscribers", "sightline.socket"]

        public init(_ descriptors: [ListenDescriptor]) {
            for descriptor in descriptors {
                if descriptor.name == Self.httpName, http == nil {
                    http = descriptor
                } else if Self.subscriberNames.contains(descriptor.name), subscribers == nil {
                    subscribers = descriptor
                } else {
                    unknown.append(descriptor)
                }
            }
        }
    }

    /// The sockets passed to this process (see `listenDescriptors`), by purpose.
    public static func passed(environment: [String: String] = ProcessInfo.processInfo.environment, pid: Int32 = getpid()) -> Passed {
        Passed(listenDescriptors(environment: environment, pid: pid))
    }

    /// The path a Unix socket is bound to, or nil (not a Unix socket, or unnamed).
    public static func unixPath(of fd: Int32) -> String? {
        var address = sockaddr_un()
        var length = socklen_t(MemoryLayout<sockaddr_un>.size)
        let status = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard status == 0, address.sun_family == sa_family_t(AF_UNIX) else { return nil }
        let path = withUnsafeBytes(of: address.sun_path) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        return path.isEmpty ? nil : path
    }
}
