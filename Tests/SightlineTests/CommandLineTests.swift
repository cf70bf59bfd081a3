import Foundation
import TestSupport
import XCTest

/// The command line itself: --version, help text, thread counts, directories and sequences of images, bad hosts.
final class CommandLineTests: XCTestCase {
    let binary = TestPaths.sightlineBinary
    static let subcommands = ["detect", "run", "check", "tail", "bench", "calibrate"]

    func records(_ result: ProcessResult) throws -> [[String: Any]] {
        try result.stdoutLines.map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
    }

    func testVersionOnTheExecutableAndEverySubcommand() throws {
        let usage = try runProcess(binary, ["--help"])
        for command in Self.subcommands { XCTAssertTrue(usage.stdout.contains("  \(command)"), "\(command) is a subcommand: \(usage.stdout)") }
        let top = try runProcess(binary, ["--version"])
        XCTAssertEqual(top.status, 0, top.stderr)
        let version = top.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertNotNil(version.firstMatch(of: /^\d+\.\d+\.\d+$/), "a version number: \(top.stdout)")
        for command in Self.subcommands {
            let result = try runProcess(binary, [command, "--version"])
            XCTAssertEqual(result.status, 0, "\(command): \(result.stderr)")
            XCTAssertEqual(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines), version, command)
        }
    }

    func testHelpSaysEachDefaultOnceAndTailExplainsItsFormat() throws {
        for command in Self.subcommands {
            let help = try runProcess(binary, [command, "--help"])
            XCTAssertEqual(help.status, 0, help.stderr)
            // An option's help is one entry, possibly wrapped over lines: join them before counting.
            let entries = help.stdout.components(separatedBy: "\n  -").map { $0.split(separator: "\n").joined(separator: " ") }
            for entry in entries {
                XCTAssertLessThanOrEqual(entry.components(separatedBy: "default").count - 1, 1, "\(command): \(entry)")
            }
        }
        let tail = try runProcess(binary, ["tail", "--help"])
        for needle in ["TIME SOURCE #FRAME LABEL SCORE [XMIN YMIN XMAX YMAX]", "--raw", "reconnects", "--once"] {
            XCTAssertTrue(tail.stdout.contains(needle), "tail --help explains \(needle): \(tail.stdout)")
        }
    }

    func testThreadsZeroIsOnePerCoreAndTooManyWarns() throws {
        let image = TestPaths.media("basketball1.png")
        let zero = try runProcess(binary, ["detect", "--threads", "0", image])
        XCTAssertEqual(zero.status, 0, zero.stderr)
        XCTAssertEqual(zero.stdoutLines.count, 1)
        XCTAssertEqual(zero.stderr, "", "one per core needs no warning")
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let many = try runProcess(binary, ["detect", "--threads", "\(cores + 1)", image])
        XCTAssertEqual(many.status, 0, many.stderr)
        XCTAssertEqual(many.stdoutLines.count, 1, "more threads than cores still works")
        XCTAssertTrue(many.stderr.contains("WARNING: --threads \(cores + 1) is more than the \(cores) cores"), many.stderr)
        let negative = try runProcess(binary, ["detect", "--threads", "-1", image])
        XCTAssertNotEqual(negative.status, 0)
        XCTAssertTrue(negative.stderr.contains("--threads"), negative.stderr)
    }

    func testDirectoryDetectsEveryImageInNameOrderNamingEachFile() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let copies = [("b.png", "basketball1.png"), ("a.jpg", "messi5.jpg"), ("c.PNG", "basketball1.png")]
        for (name, media) in copies {
            try FileManager.default.copyItem(atPath: TestPaths.media(media), toPath: dir.appendingPathComponent(name).path)
        }
        try "not an image".write(to: dir.appendingPathComponent("notes.txt"), atomically: true, encoding: .utf8)
        try "hidden".write(to: dir.appendingPathComponent(".a.png"), atomically: true, encoding: .utf8)
        let result = try runProcess(binary, ["detect", dir.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        let found = try records(result)
        XCTAssertEqual(found.map { $0["file"] as? String }, ["a.jpg", "b.png", "c.PNG"].map { dir.appendingPathComponent($0).path })
        XCTAssertEqual(found.map { $0["frame"] as? Int }, [0, 1, 2])
        XCTAssertTrue(found.allSatisfy { $0["source"] as? String == dir.path }, "\(found)")
        // The same images detected one by one give the same detections.
        for record in found {
            let file = try XCTUnwrap(record["file"] as? String)
            let alone = try records(try runProcess(binary, ["detect", file]))
            XCTAssertEqual(alone.count, 1)
            let expected = try XCTUnwrap(alone.first?["detections"] as? [[String: Any]]).count
            XCTAssertEqual((record["detections"] as? [[String: Any]])?.count, expected, file)
        }
    }

    func testAnEmptyDirectoryIsAnError() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try runProcess(binary, ["detect", dir.path])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains(dir.path) && result.stderr.contains("no images"), result.stderr)
    }

    func testAnUnresolvableHostSaysSo() throws {
        let url = "rtsp://sightline-no-such-host.invalid/stream"
        let result = try runProcess(binary, ["detect", "--io-timeout", "5", url])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("cannot resolve host 'sightline-no-such-host.invalid'"), result.stderr)
        XCTAssertFalse(result.stderr.contains("Input/output error"), result.stderr)
    }
}
