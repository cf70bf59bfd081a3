import Daemon
import HTTP
import XCTest

/// The `http:` section (docs/CONFIG.md, docs/HTTP.md): off unless written, loopback by default.
final class HTTPConfigTests: XCTestCase {
    let sources = "\nsources: [{ name: a, input: /dev/video0 }]"

    func testOffUnlessWrittenAndLoopbackByDefault() throws {
        XCTAssertNil(try DaemonConfig.parse("threshold: 0.5" + sources, origin: "t").http)
        XCTAssertNil(try DaemonConfig.parse("http: null" + sources, origin: "t").http)
        let defaults = try XCTUnwrap(try DaemonConfig.parse("http: {}" + sources, origin: "t").http)
        XCTAssertEqual(defaults, HTTPOptions(listen: .tcp(host: "127.0.0.1", port: 8970), previewFPS: 5, maxStreamClients: 10, staleSeconds: 5, snapshots: 50))
        let set = try XCTUnwrap(try DaemonConfig.parse("http: { listen: \"[::1]:9000\", preview_fps: 2, max_stream_clients: 3, stale_seconds: 9, snapshots: 0 }"
                                                       + sources, origin: "t").http)
        XCTAssertEqual(set, HTTPOptions(listen: .tcp(host: "::1", port: 9000), previewFPS: 2, maxStreamClients: 3, staleSeconds: 9, snapshots: 0))
    }

    func testListenAddresses() {
        XCTAssertEqual(HTTPOptions.Listen("0.0.0.0:80"), .tcp(host: "0.0.0.0", port: 80))
        XCTAssertEqual(HTTPOptions.Listen("localhost:0"), .tcp(host: "localhost", port: 0))
        XCTAssertEqual(HTTPOptions.Listen("unix:/run/sightline/http.sock"), .unix(path: "/run/sightline/http.sock"))
        XCTAssertEqual(HTTPOptions.Listen("/tmp/h.sock"), .unix(path: "/tmp/h.sock"))
        XCTAssertEqual(HTTPOptions.Listen("[::1]:8970")?.description, "[::1]:8970")
        for bad in ["8970", "127.0.0.1", "127.0.0.1:65536", "127.0.0.1:-1", ":80", "unix:relative.sock", "unix:/" + String(repeating: "x", count: 120),
                    "a b:80", "127.0.0.1:http",
                    "[:0", "[::1:80", "::1]:80", "[]:80", "[127.0.0.1]:80", "unix:", "unix:/", "unix:/tmp/", "unix:/tmp/.."] {
            XCTAssertNil(HTTPOptions.Listen(bad), bad)
        }
    }

    func testABadSectionNamesTheKeyAndLine() {
        XCTAssertThrowsError(try DaemonConfig.parse("threshold: 0.5\nhttp:\n  listen: 8970\n  colour: red" + sources, origin: "t")) { error in
            let problems = (error as? ConfigError)?.problems ?? []
            XCTAssertEqual(problems.map(\.keyPath).sorted(), ["http.colour", "http.listen"], "\(error)")
            XCTAssertEqual(problems.first { $0.keyPath == "http.listen" }?.line, 3)
            XCTAssertTrue(problems.contains { $0.message.contains("HOST:PORT") }, "\(error)")
        }
    }

    func testChangingHTTPNeedsARestart() throws {
        let before = try DaemonConfig.parse("http: {}" + sources, origin: "t")
        let after = try DaemonConfig.parse("http: { preview_fps: 2 }" + sources, origin: "t")
        XCTAssertEqual(before.changes(to: after).needsRestart, ["http"])
        XCTAssertEqual(before.changes(to: before).needsRestart, [])
    }
}
