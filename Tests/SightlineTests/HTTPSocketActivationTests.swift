import Foundation
import TestSupport
import XCTest

/// The HTTP listener handed over by socket activation (sightline-http.socket, docs/HTTP.md): systemd-socket-activate
/// listens and starts the real daemon on the first connection with the sockets as fds 3.. (LISTEN_FDS, LISTEN_PID
/// the daemon's own pid, LISTEN_FDNAMES), exactly as systemd does; a real HTTP client (curl) talks to it.
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
        let health = try daemon.waitFor("/healthz", status: 200, timeout: 90)
        XCTAssertEqual(health.status, 200, "\(health.text)\n\(launcher.stderr)")
        let sources = try daemon.get("/api/sources")
        XCTAssertEqual(sources.status, 200)
        let names = (try? JSONSerialization.jsonObject(with: sources.body) as? [[String: Any]])?.compactMap { $0["name"] as? String }
        XCTAssertEqual(names, ["net"], sources.text)
        XCTAssertEqual(sources.headers["server"], "Sightline")
        XCTAssertNil(RawHTTPClient(port: configuredPort, path: "/healthz"), "the config's own listen address is not bound")
        XCTAssertTrue(launcher.stderr.contains("HTTP listening on the socket passed by systemd"), launcher.stderr)
        XCTAssertTrue(launcher.stderr.contains("http.listen is not used"), "the disagreement is logged: \(launcher.stderr)")
        // The subscriber socket was not passed, so the daemon bound the configured one itself.
        let subscriber = try LineSubscriber(path: daemon.socketPath)
        XCTAssertEqual(subscriber.next(timeout: 10)?["type"] as? String, "hello")
        launcher.signal(SIGTERM)
        XCTAssertEqual(launcher.wait(timeout: 30), 0, launcher.stderr)
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

        let deadline = Date().addingTimeInterval(30)
        var health = try unixGet(httpSocket, "/healthz")
        while health.status != 200, Date() < deadline {
            Thread.sleep(forTimeInterval: 0.25)
            health = try unixGet(httpSocket, "/healthz")
        }
        XCTAssertEqual(health.status, 200, "\(health.body)\n\(launcher.stderr)")
        let sources = try unixGet(httpSocket, "/api/sources")
        XCTAssertEqual(sources.status, 200)
        XCTAssertTrue(sources.body.contains("\"name\":\"net\""), sources.body)

        XCTAssertFalse(FileManager.default.fileExists(atPath: daemon.socketPath), "the configured socket path is not used")
        XCTAssertTrue(launcher.stderr.contains("not for sightline") && launcher.stderr.contains("metrics"),
                      "the stray socket is warned about: \(launcher.stderr)")
        // Closed, not leaked: the daemon held the only descriptor of that listening socket, so the port is free.
        XCTAssertNil(RawHTTPClient(port: strayPort, path: "/"), "the stray socket still listens")
        launcher.signal(SIGTERM)
        XCTAssertEqual(launcher.wait(timeout: 30), 0, launcher.stderr)
        _ = stream
    }

    /// One GET with curl over a Unix socket; status 0 if curl got no answer.
    func unixGet(_ socket: String, _ path: String) throws -> (status: Int, body: String) {
        let body = daemon.dir.appendingPathComponent("unix-body-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: body) }
        let result = try runProcess("/usr/bin/env", ["curl", "-s", "--unix-socket", socket, "-o", body.path, "-w", "%{http_code}",
                                                     "--max-time", "5", "http://sightline\(path)"])
        return (Int(result.stdout) ?? 0, (try? String(contentsOf: body, encoding: .utf8)) ?? "")
    }
}
