import Foundation
import TestSupport
import XCTest

/// The HTTP listener handed over by socket activation (sightline-http.socket, docs/HTTP.md): systemd-socket-activate
/// listens and starts the real daemon on the first connection with the sockets as fds 3.. (LISTEN_FDS, LISTEN_PID
/// the daemon's own pid, LISTEN_FDNAMES), exactly as systemd does. The HTTP requests are written on plain sockets:
/// a child spawned with Foundation's Process while systemd-socket-activate's exec'd child ran was never reaped (curl
/// stayed a zombie and its `waitUntilExit` never returned), so nothing else is spawned meanwhile.
final class HTTPSocketActivationTests: XCTestCase {
    let activate = "/usr/bin/systemd-socket-activate"
    var daemon: HTTPDaemonHarness!

    override func setUpWithError() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: activate), "systemd-socket-activate is not installed")
        daemon = try HTTPDaemonHarness()
    }

    override func tearDownWithError() throws { daemon = nil }

    func writeConfig(input: String, http: String?) throws {
        try """
        threshold: 0.5
        workers: 2
        heartbeat_seconds: 0
        socket: { path: \(daemon.socketPath), mode: "0600" }
        \(http.map { "http: \($0)" } ?? "")
        sources:
          - { name: net, input: "\(input)", io_timeout: 120 }
        """.write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
    }

    func testServesHTTPOnThePassedTCPSocketInsteadOfTheConfiguredAddress() throws {
        let (stream, url) = try daemon.serveStream()
        let configuredPort = freeLoopbackPort()
        try writeConfig(input: url, http: "{ listen: \"127.0.0.1:\(configuredPort)\", stale_seconds: 5 }")
        // The passed socket listens on the harness's port, so `get` goes through it.
        let launcher = try BackgroundProcess(activate, ["-l", "127.0.0.1:\(daemon.httpPort)", "--fdname=http",
                                                        daemon.binary, "run", "--config", daemon.configPath])
        // The first connection starts the daemon; the request waits in the passed socket's queue meanwhile.
        let tcp = PlainHTTP.tcp(port: daemon.httpPort)
        let health = tcp.waitFor("/healthz", status: 200, timeout: 90)
        XCTAssertEqual(health.status, 200, "\(health.body)\n\(launcher.stderr)")
        let sources = tcp.get("/api/sources")
        XCTAssertEqual(sources.status, 200)
        let names = (try? JSONSerialization.jsonObject(with: Data(sources.body.utf8)) as? [[String: Any]])?.compactMap { $0["name"] as? String }
        XCTAssertEqual(names, ["net"], sources.body)
        XCTAssertTrue(sources.head.lowercased().contains("server: sightline"), sources.head)
        XCTAssertNil(RawHTTPClient(port: configuredPort, path: "/healthz"), "the config's own listen address is not bound")
        XCTAssertTrue(launcher.stderr.contains("HTTP listening on the socket passed by systemd"), launcher.stderr)
        XCTAssertTrue(launcher.stderr.contains("http.listen is not used"), "the disagreement is logged: \(launcher.stderr)")
        // The subscriber socket was not passed, so the daemon bound the configured one itself.
        let subscriber = try LineSubscriber(path: daemon.socketPath)
        XCTAssertEqual(subscriber.next(timeout: 10)?["type"] as? String, "hello")
        launcher.signal(SIGTERM)
        XCTAssertEqual(launcher.wait(timeout: 120), 0, launcher.stderr)
        _ = stream
    }

    func testSubscriberAndUnixHTTPSocketsPassedTogetherAndAStrayOneClosed() throws {
        let (stream, url) = try daemon.serveStream()
        // No http: section: the passed HTTP socket alone turns the server on.
        try writeConfig(input: url, http: nil)
        let subscribers = daemon.dir.appendingPathComponent("passed.sock").path
        let httpSocket = daemon.dir.appendingPathComponent("http.sock").path
        let strayPort = freeLoopbackPort()
        let launcher = try BackgroundProcess(activate, ["-l", subscribers, "-l", httpSocket, "-l", "127.0.0.1:\(strayPort)",
                                                        "--fdname=subscribers:http:metrics",
                                                        daemon.binary, "run", "--config", daemon.configPath])
        let subscriber = try LineSubscriber(path: subscribers)
        XCTAssertEqual(subscriber.next(timeout: 60)?["type"] as? String, "hello", launcher.stderr)
        XCTAssertNotNil(subscriber.until(timeout: 30) { $0["type"] as? String == "detections" }.match, "detections on the passed socket")

        let unix = PlainHTTP.unix(path: httpSocket)
        let health = unix.waitFor("/healthz", status: 200, timeout: 30)
        XCTAssertEqual(health.status, 200, "\(health.body)\n\(launcher.stderr)")
        let sources = unix.get("/api/sources")
        XCTAssertEqual(sources.status, 200)
        XCTAssertTrue(sources.body.contains("\"name\":\"net\""), sources.body)

        XCTAssertFalse(FileManager.default.fileExists(atPath: daemon.socketPath), "the configured socket path is not used")
        XCTAssertTrue(launcher.stderr.contains("not for sightline") && launcher.stderr.contains("metrics"),
                      "the stray socket is warned about: \(launcher.stderr)")
        // Closed, not leaked: the daemon held the only descriptor of that listening socket, so the port is free.
        XCTAssertNil(RawHTTPClient(port: strayPort, path: "/"), "the stray socket still listens")
        launcher.signal(SIGTERM)
        XCTAssertEqual(launcher.wait(timeout: 120), 0, launcher.stderr)
        _ = stream
    }
}

/// HTTP/1.1 GETs (`Connection: close`) on a plain TCP or Unix socket, the whole answer read until the server closes.
struct PlainHTTP {
    let connect: () -> Int32

    static func tcp(port: UInt16) -> PlainHTTP {
        PlainHTTP {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = port.bigEndian
            let status = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Foundation.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if status != 0 { close(fd); return -1 }
            return fd
        }
    }

    static func unix(path: String) -> PlainHTTP {
        PlainHTTP {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8.prefix(MemoryLayout.size(ofValue: address.sun_path) - 1))
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
            let status = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Foundation.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            if status != 0 { close(fd); return -1 }
            return fd
        }
    }

    struct Reply {
        let status: Int
        let head: String
        let body: String
    }

    /// One GET; status 0 if the connection failed or no complete answer came within `timeout`.
    func get(_ path: String, timeout: TimeInterval = 20) -> Reply {
        let fd = connect()
        guard fd >= 0 else { return Reply(status: 0, head: "", body: "connect failed: errno \(errno)") }
        defer { close(fd) }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: sightline\r\nConnection: close\r\n\r\n".utf8)
        guard write(fd, request, request.count) == request.count else { return Reply(status: 0, head: "", body: "write failed") }
        let deadline = Date().addingTimeInterval(timeout)
        var received: [UInt8] = []
        while Date() < deadline {
            var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, 200) >= 0 else { break }
            guard ready.revents != 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = read(fd, &chunk, chunk.count)
            guard n > 0 else { break }
            received += chunk[0..<n]
        }
        let text = String(decoding: received, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { return Reply(status: 0, head: text, body: "") }
        let head = String(text[..<split.lowerBound]), body = String(text[split.upperBound...])
        let statusLine = head.split(separator: "\r\n").first?.split(separator: " ") ?? []
        return Reply(status: statusLine.count >= 2 ? Int(statusLine[1]) ?? 0 : 0, head: head, body: body)
    }

    /// Asks for `path` until it answers `status` (or the time is up); returns the last reply.
    func waitFor(_ path: String, status: Int, timeout: TimeInterval) -> Reply {
        let deadline = Date().addingTimeInterval(timeout)
        var reply = get(path, timeout: 10)
        while reply.status != status && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.25)
            reply = get(path, timeout: 10)
        }
        return reply
    }
}
