import Foundation
import TestSupport
import XCTest

/// `--precision`, `sightline calibrate` and the ISA fallback, through the real binary.
final class PrecisionCommandTests: XCTestCase {
    let binary = TestPaths.sightlineBinary

    func jsonLines(_ text: String) throws -> [[String: Any]] {
        try text.split(separator: "\n").map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
    }

    /// Capped to AVX2 (no VNNI, no bf16 dot products), `auto` still runs, says what it picked and why, and no
    /// layer falls back to a reference kernel; a precision with no AVX2 kernels is refused by name.
    func testAutoUnderAnAVX2CapPicksAFastPrecisionAndSaysWhy() throws {
        let avx2 = ["ONEDNN_MAX_CPU_ISA": "AVX2"]
        let bench = try runProcess(binary, ["bench", "--threads", "1", "--iterations", "3", "--json"], environment: avx2)
        XCTAssertEqual(bench.status, 0, bench.stderr)
        XCTAssertFalse(bench.stderr.contains("reference"), bench.stderr)
        let lines = try jsonLines(bench.stdout)
        XCTAssertEqual(Set(lines.compactMap { $0["precision"] as? String }), ["f32"], bench.stdout)
        let reason = try XCTUnwrap(lines.compactMap { $0["precision_reason"] as? String }.first, bench.stdout)
        XCTAssertTrue(reason.hasPrefix("auto:") && reason.contains("avx2"), reason)

        let detect = try runProcess(binary, ["detect", TestPaths.media("messi5.jpg")], environment: avx2)
        XCTAssertEqual(detect.status, 0, detect.stderr)
        XCTAssertEqual(detect.stderr, "", "no warning: no reference kernels, nothing wrong")
        XCTAssertEqual(detect.stdoutLines.count, 1)

        let bf16 = try runProcess(binary, ["detect", "--precision", "bf16", TestPaths.media("messi5.jpg")], environment: avx2)
        XCTAssertEqual(bf16.status, 1)
        XCTAssertTrue(bf16.stderr.contains("bf16 has no optimized oneDNN kernels on this CPU (avx2)"), bf16.stderr)
        XCTAssertEqual(bf16.stdout, "")
    }

    func testBenchStatesThePrecisionItMeasured() throws {
        for precision in ["f32", "bf16", "int8"] {
            let bench = try runProcess(binary, ["bench", "--precision", precision, "--threads", "1", "--iterations", "3", "--json"])
            XCTAssertEqual(bench.status, 0, bench.stderr)
            let lines = try jsonLines(bench.stdout)
            XCTAssertEqual(lines.count, 2)
            XCTAssertEqual(Set(lines.compactMap { $0["precision"] as? String }), [precision])
            XCTAssertEqual(lines.compactMap { $0["precision_reason"] as? String }, ["requested"])
        }
    }

    /// Calibrating a copy of the model writes the file beside it, which `auto` then uses; spoiling it makes `auto`
    /// warn and use another precision, and `--precision int8` fail naming the file.
    func testCalibrateWritesTheFileAutoFindsAndABadOneIsNamed() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("copy.pb").path
        try FileManager.default.copyItem(atPath: TestPaths.model, toPath: model)
        let calibration = dir.appendingPathComponent("copy.calibration.json").path

        let calibrate = try runProcess(binary, ["calibrate", "--model", model, "--frames", "6", "--every", "40",
                                                TestPaths.media("Megamind.avi")])
        XCTAssertEqual(calibrate.status, 0, calibrate.stderr)
        XCTAssertTrue(calibrate.stdout.contains("wrote \(calibration)") && calibrate.stdout.contains("from 6 frames"), calibrate.stdout)
        XCTAssertTrue(calibrate.stdout.contains("int8 against f32 on these frames: kept"), calibrate.stdout)
        let written = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: calibration))) as? [String: Any])
        XCTAssertEqual((written["ranges"] as? [String: Any])?.count, 76)

        let image = TestPaths.media("messi5.jpg")
        let int8 = try runProcess(binary, ["detect", "--model", model, "--precision", "int8", image])
        XCTAssertEqual(int8.status, 0, int8.stderr)
        XCTAssertEqual(int8.stdoutLines.count, 1)
        let bench = try runProcess(binary, ["bench", "--model", model, "--threads", "1", "--iterations", "3", "--json"])
        XCTAssertEqual(bench.status, 0, bench.stderr)
        let cpuFlags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        if cpuFlags.contains("avx512_vnni") || cpuFlags.contains("avx_vnni") {
            XCTAssertTrue(bench.stdout.contains(#""precision":"int8""#), "auto runs int8 with the fresh calibration: \(bench.stdout)")
        }

        try Data("{\"sightline_calibration\": 1, \"ranges\": 7}".utf8).write(to: URL(fileURLWithPath: calibration))
        let auto = try runProcess(binary, ["detect", "--model", model, image])
        XCTAssertEqual(auto.status, 0, auto.stderr)
        XCTAssertTrue(auto.stderr.contains("WARNING: bad calibration file \(calibration)"), auto.stderr)
        XCTAssertFalse(auto.stderr.contains("using int8"), auto.stderr)
        XCTAssertEqual(auto.stdoutLines.count, 1)
        let refused = try runProcess(binary, ["detect", "--model", model, "--precision", "int8", image])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("bad calibration file \(calibration)"), refused.stderr)
        XCTAssertEqual(refused.stdout, "")

        let noInput = try runProcess(binary, ["calibrate", "--model", model, dir.appendingPathComponent("missing.avi").path])
        XCTAssertEqual(noInput.status, 1)
        XCTAssertTrue(noInput.stderr.contains("missing.avi"), noInput.stderr)
    }

    /// `-o` naming something the calibration file must not replace is refused before any work, and the thing is
    /// left as it was: a FIFO (as a device would be: the file is written by rename), a directory, a regular file
    /// with a trailing slash, a directory that does not exist.
    func testCalibrateRefusesADestinationItMustNotReplace() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fifo = dir.appendingPathComponent("fifo").path, file = dir.appendingPathComponent("file").path
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: file))
        let image = TestPaths.media("messi5.jpg")
        for (output, reason) in [(fifo, "not a regular file (a FIFO)"), (dir.path, "a directory"), (file + "/", "names a directory"),
                                 (dir.appendingPathComponent("missing/c.json").path, "is not an existing directory")] {
            let result = try runProcess(binary, ["calibrate", "--frames", "1", "-o", output, image])
            XCTAssertEqual(result.status, 1, "\(output): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("cannot write \(output)") && result.stderr.contains(reason), "\(output): \(result.stderr)")
            XCTAssertEqual(result.stdout, "", output)
        }
        var info = stat()
        XCTAssertEqual(stat(fifo, &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFIFO, "the FIFO is still a FIFO")
        XCTAssertEqual(try String(contentsOfFile: file, encoding: .utf8), "keep me")
        let empty = try runProcess(binary, ["calibrate", "-o", "", image])
        XCTAssertEqual(empty.status, 64, empty.stderr)
        XCTAssertTrue(empty.stderr.contains("--output is empty"), empty.stderr)
    }
}
