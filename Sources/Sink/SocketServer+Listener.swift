import Foundation
import Values

/// Why the socket server could not start. The message names the path or descriptor and the problem.
public struct SinkError: Error, CustomStringConvertible, LocalizedError, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }

    /// `strerror` in lower case, as the rest of a message reads ("permission denied").
    public static func reason(_ code: Int32) -> String {
        let text = String(cString: strerror(code))
        guard let first = text.first else { return "error \(code)" }
        return first.lowercased() + text.dropFirst()
    }
}

extension SocketServer {
    // MARK: - Setup

    static func makeWakePipe() throws -> (read: Int32, write: Int32) {
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

    static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
    }

    private static func unixAddress(_ path: String) throws -> (sockaddr_un, socklen_t) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        // Also refuses a path ending in "/", which bind() would report as EADDRINUSE, as if someone listened there.
        if let problem = UnixSocketPath.problem(path) { throw SinkError("cannot create socket at \(path): the path \(problem)") }
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

    /// Makes `path` free for a new socket: nothing there, or an old socket nobody accepts on any more (removed).
    /// Throws, naming the path, when something else is there or another process still listens on it.
    public static func removeStaleSocket(at path: String) throws {
        var (address, length) = try unixAddress(path)
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
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

    /// Binds and listens on `path`, replacing a stale socket file; returns the descriptor and the
    /// identity of the file it created.
    static func bindListener(path: String, options: Options) throws -> (fd: Int32, dev: UInt64, ino: UInt64) {
        var (address, length) = try unixAddress(path)
        let gid = try options.group.map(resolveGroup)
        try removeStaleSocket(at: path)

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
        var info = stat()
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
