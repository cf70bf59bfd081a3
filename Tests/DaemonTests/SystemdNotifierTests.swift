import Daemon
import Foundation
import TestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class SystemdNotifierTests: XCTestCase {
    func testSendsStatesToAFilesystemSocket() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("notify.sock").path
        let receiver = try DatagramReceiver(address: path)
        defer { receiver.close() }

        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": path])
        XCTAssertTrue(notifier.isEnabled)
        XCTAssertEqual(notifier.socketPath, path)

        try notifier.ready()
        XCTAssertEqual(try receiver.receive(), "READY=1")
        try notifier.status("3 sources, 12.5 fps")
        XCTAssertEqual(try receiver.receive(), "STATUS=3 sources, 12.5 fps")
        try notifier.status("two\nlines")
        XCTAssertEqual(try receiver.receive(), "STATUS=two lines")
        try notifier.watchdog()
        XCTAssertEqual(try receiver.receive(), "WATCHDOG=1")
        try notifier.reloading()
        let reloading = try receiver.receive()
        XCTAssertTrue(reloading.hasPrefix("RELOADING=1\nMONOTONIC_USEC="), reloading)
        XCTAssertNotNil(UInt64(reloading.dropFirst("RELOADING=1\nMONOTONIC_USEC=".count)), reloading)
        try notifier.stopping()
        XCTAssertEqual(try receiver.receive(), "STOPPING=1")
    }

    func testSendsToAnAbstractSocket() throws {
        let name = "@sightline-test-\(UUID().uuidString)"
        let receiver = try DatagramReceiver(address: name)
        defer { receiver.close() }

        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": name])
        try notifier.ready()
        XCTAssertEqual(try receiver.receive(), "READY=1")
        try notifier.status("abstract")
        XCTAssertEqual(try receiver.receive(), "STATUS=abstract")
        try notifier.watchdog()
        XCTAssertEqual(try receiver.receive(), "WATCHDOG=1")
        try notifier.stopping()
        XCTAssertEqual(try receiver.receive(), "STOPPING=1")
    }

    func testDoesNothingWithoutNotifySocket() throws {
        for environment in [[:], ["NOTIFY_SOCKET": ""], ["NOTIFY_SOCKET": "vsock:2:1234"]] {
            let notifier = SystemdNotifier(environment: environment)
            XCTAssertFalse(notifier.isEnabled)
            XCTAssertNil(notifier.socketPath)
            try notifier.ready()
            try notifier.status("nobody listens")
            try notifier.watchdog()
            try notifier.reloading()
            try notifier.stopping()
        }
    }

    func testReportsAnUnreachableSocket() {
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": "/nonexistent/notify.sock"])
        XCTAssertThrowsError(try notifier.ready()) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent/notify.sock"), "\(error)")
        }
    }

    func testWatchdogInterval() {
        let pid = getpid()
        XCTAssertNil(SystemdNotifier(environment: [:]).watchdogInterval)
        XCTAssertNil(SystemdNotifier(environment: ["WATCHDOG_USEC": "0"]).watchdogInterval)
        XCTAssertNil(SystemdNotifier(environment: ["WATCHDOG_USEC": "soon"]).watchdogInterval)

        let plain = SystemdNotifier(environment: ["WATCHDOG_USEC": "30000000"])
        XCTAssertEqual(plain.watchdogInterval, .seconds(30))
        XCTAssertEqual(plain.watchdogPingInterval, .seconds(15))

        XCTAssertEqual(SystemdNotifier(environment: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "\(pid)"]).watchdogInterval,
                       .seconds(30))
        XCTAssertNil(SystemdNotifier(environment: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "\(pid + 1)"]).watchdogInterval,
                     "the watchdog belongs to another process")
        XCTAssertEqual(SystemdNotifier(environment: ["WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "42"], pid: 42).watchdogInterval,
                       .seconds(5))
    }

    func testListenDescriptors() {
        let pid = getpid()
        XCTAssertEqual(SystemdSocketActivation.listenDescriptors(environment: [:]), [])
        XCTAssertEqual(SystemdSocketActivation.listenDescriptors(environment: ["LISTEN_PID": "\(pid + 1)", "LISTEN_FDS": "1"]), [])
        let passed = SystemdSocketActivation.listenDescriptors(
            environment: ["LISTEN_PID": "\(pid)", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "sightline.socket:extra"],
            setCloseOnExec: false)
        XCTAssertEqual(passed, [.init(fd: 3, name: "sightline.socket"), .init(fd: 4, name: "extra")])
    }

    func testPassedSocketsAreToldApartByName() {
        typealias Passed = SystemdSocketActivation.Passed
        // sightline.socket (its default name, or `subscribers`) and sightline-http.socket, in either order.
        for subscriberName in ["sightline.socket", "subscribers"] {
            let both = Passed([.init(fd: 3, name: "http"), .init(fd: 4, name: subscriberName)])
            XCTAssertEqual(both.http, .init(fd: 3, name: "http"))
            XCTAssertEqual(both.subscribers, .init(fd: 4, name: subscriberName))
            XCTAssertEqual(both.unknown, [])
        }
        // Only the HTTP socket: the subscriber socket is bound from the config.
        XCTAssertEqual(Passed([.init(fd: 3, name: "http")]).subscribers, nil)
        // No names (systemd-socket-activate without --fdname, or sd_listen_fds' "unknown"): the subscriber socket.
        XCTAssertEqual(Passed([.init(fd: 3, name: nil)]).subscribers, .init(fd: 3, name: nil))
        XCTAssertEqual(Passed([.init(fd: 3, name: "unknown")]).subscribers, .init(fd: 3, name: "unknown"))
        // Other names, and a second socket for the same purpose, are left over (the daemon warns and closes them).
        let odd = Passed([.init(fd: 3, name: "metrics"), .init(fd: 4, name: "http"), .init(fd: 5, name: "http"),
                          .init(fd: 6, name: "subscribers"), .init(fd: 7, name: "sightline.socket")])
        XCTAssertEqual(odd.http?.fd, 4)
        XCTAssertEqual(odd.subscribers?.fd, 6)
        XCTAssertEqual(odd.unknown.map(\.fd), [3, 5, 7])
    }

    func testUnixPathOfASocket() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("u.sock").path
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0)
        XCTAssertEqual(SystemdSocketActivation.unixPath(of: fd), path)
        let tcp = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(tcp) }
        XCTAssertNil(SystemdSocketActivation.unixPath(of: tcp))
    }
}

/// A bound AF_UNIX datagram socket standing in for systemd's notification socket.
private final class DatagramReceiver {
    private var fd: Int32

    init(address: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))

        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(address.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count + (abstract ? 0 : 1))
        let status = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard status == 0 else {
            let code = errno
            Glibc.close(fd)
            throw POSIXError(.init(rawValue: code) ?? .EIO)
        }
    }

    func receive() throws -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard count >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }
}
