import Foundation
import TestSupport
import XCTest

/// The shipped units as systemd itself judges them.
final class SystemdUnitTests: XCTestCase {
    let analyze = "/usr/bin/systemd-analyze"
    let unit = TestPaths.repoRoot.appendingPathComponent("systemd/sightline.service").path

    override func setUpWithError() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: analyze), "systemd-analyze is not installed")
    }

    func testExposureIsAtMostTwo() throws {
        let result = try runProcess(analyze, ["security", "--offline=yes", "--no-pager", unit])
        let line = try XCTUnwrap(result.stdout.split(separator: "\n").first { $0.contains("Overall exposure level") }, result.stdout + result.stderr)
        let score = try XCTUnwrap(line.split(separator: " ").compactMap { Double($0) }.first, String(line))
        XCTAssertLessThanOrEqual(score, 2.0, String(line))
    }

    func testUnitsVerifyClean() throws {
        // verify checks that ExecStart exists, so point it at a binary this machine has.
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let names = ["sightline.service", "sightline.socket", "sightline-http.socket"]
        for name in names {
            let text = try String(contentsOfFile: TestPaths.repoRoot.appendingPathComponent("systemd/\(name)").path, encoding: .utf8)
            try text.replacingOccurrences(of: "/usr/local/bin/sightline", with: "/bin/true")
                .write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        let result = try runProcess(analyze, ["verify"] + names.map { dir.appendingPathComponent($0).path })
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        let complaints = (result.stdout + result.stderr).split(separator: "\n").filter { $0.contains("sightline") }
        XCTAssertEqual(complaints, [], "systemd-analyze verify complains about the units")
    }

    func testServiceKeepsTheSettingsTheDaemonRelies() throws {
        let text = try String(contentsOfFile: unit, encoding: .utf8)
        for setting in ["Type=notify", "WatchdogSec=", "RuntimeDirectory=sightline", "ExecReload=/bin/kill -HUP $MAINPID"] {
            XCTAssertTrue(text.contains(setting), "missing \(setting)")
        }
        // oneDNN writes its kernels into executable memory at run time.
        XCTAssertFalse(text.split(separator: "\n").contains { $0.hasPrefix("MemoryDenyWriteExecute=yes") })
    }
}
