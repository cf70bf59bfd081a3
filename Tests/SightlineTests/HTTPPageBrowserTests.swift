import Foundation
import TestSupport
import XCTest

/// The page at `/` in a real browser: headless Chromium (Debian's `chromium`, installed by scripts/setup.sh).
final class HTTPPageBrowserTests: XCTestCase {
    func testThePageShowsALivePreview() throws {
        let chromium = try XCTUnwrap(["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) },
                                     "chromium is missing: run scripts/setup.sh")
        let server = try HTTPDaemonHarness()
        let (stream, url) = try server.serveStream()
        let daemon = try server.start(input: url)
        XCTAssertEqual(try server.waitFor("/healthz", status: 200, timeout: 120).status, 200, daemon.stderr)
        XCTAssertEqual(try server.get("/sources/net/latest.jpg").status, 200, "a first picture")

        // Two screenshots a second apart: the pictures (and the numbers under them) have moved on.
        func screenshot(_ name: String) throws -> Data {
            let file = server.dir.appendingPathComponent(name)
            let profile = server.dir.appendingPathComponent("profile-\(name)")
            let run = try runProcess(chromium, ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                                "--user-data-dir=\(profile.path)", "--window-size=900,640",
                                                "--virtual-time-budget=2500", "--screenshot=\(file.path)",
                                                "http://127.0.0.1:\(server.httpPort)/"])
            XCTAssertEqual(run.status, 0, run.stderr)
            let png = try Data(contentsOf: file)
            XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47], "a PNG")
            if let keep = ProcessInfo.processInfo.environment["SIGHTLINE_SCREENSHOT"] { try png.write(to: URL(fileURLWithPath: keep)) }
            return png
        }
        let first = try screenshot("first.png")
        Thread.sleep(forTimeInterval: 1)
        let second = try screenshot("second.png")
        XCTAssertGreaterThan(first.count, 20_000, "the page shows a picture, not just text")
        XCTAssertNotEqual(first, second, "the preview is live")

        // Once an event has a snapshot, the page's recent events link to it.
        let deadline = Date().addingTimeInterval(60)
        while try !server.get("/api/events").text.contains("\"snapshot\"") && Date() < deadline { Thread.sleep(forTimeInterval: 0.25) }
        let dom = try runProcess(chromium, ["--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(server.dir.appendingPathComponent("profile-dom").path)",
                                            "--virtual-time-budget=2500", "--dump-dom", "http://127.0.0.1:\(server.httpPort)/"], timeout: 60)
        XCTAssertTrue(dom.stdout.contains("href=\"/events/net-"), String(dom.stdout.suffix(2000)))
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.wait(timeout: 120), 0, daemon.stderr)
        _ = stream
    }
}
