import Foundation
import TestSupport
import XCTest

/// `sightline detect` as a user runs it: the real binary, the real model, real media.
final class DetectCommandTests: XCTestCase {
    let binary = TestPaths.sightlineBinary
    static let timingFields: Set<String> = ["time", "capture_time", "latency_ms", "infer_ms"]

    /// Records with the fields that depend on timing removed, as canonical JSON.
    func canonical(_ lines: [Substring]) throws -> [String] {
        try lines.map { line in
            var object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            for key in Self.timingFields { object[key] = nil }
            return String(decoding: try JSONSerialization.data(withJSONObject: object, options: .sortedKeys), as: UTF8.self)
        }
    }

    func testLosslessOutputIsIdenticalWhateverTheThreadCount() throws {
        let video = TestPaths.media("vtest.avi")
        let one = try runProcess(binary, ["detect", "--threads", "1", video])
        let two = try runProcess(binary, ["detect", "--threads", "2", video])
        XCTAssertEqual(one.status, 0, one.stderr)
        XCTAssertEqual(two.status, 0, two.stderr)
        XCTAssertEqual(one.stdoutLines.count, 795, "every frame of vtest.avi is detected")
        let a = try canonical(one.stdoutLines), b = try canonical(two.stdoutLines)
        XCTAssertEqual(a, b, "records differ between 1 and 2 worker threads")
        // Frame order, schema and plausibility of the content.
        var peopleSeen = 0
        for (index, line) in one.stdoutLines.enumerated() {
            let record = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            XCTAssertEqual(record["type"] as? String, "detections")
            XCTAssertEqual(record["source"] as? String, video)
            XCTAssertEqual(record["frame"] as? Int, index)
            XCTAssertEqual(record["seq"] as? Int, index)
            XCTAssertEqual(record["dropped"] as? Int, 0)
            XCTAssertEqual(record["width"] as? Int, 768)
            XCTAssertEqual(record["height"] as? Int, 576)
            XCTAssertEqual(try XCTUnwrap(record["pts"] as? Double), Double(index) / 10, accuracy: 1e-9)
            let detections = try XCTUnwrap(record["detections"] as? [[String: Any]])
            let scores = detections.map { $0["score"] as? Double ?? -1 }
            XCTAssertEqual(scores, scores.sorted(by: >), "frame \(index): detections sorted by descending score")
            for d in detections {
                XCTAssertEqual(d["label"] as? String, "person")
                XCTAssertEqual(d["class_id"] as? Int, 1)
                XCTAssertGreaterThanOrEqual(d["score"] as? Double ?? -1, 0.5)
                let box = try XCTUnwrap(d["box"] as? [String: Double])
                let (xmin, ymin) = (try XCTUnwrap(box["xmin"]), try XCTUnwrap(box["ymin"]))
                let (xmax, ymax) = (try XCTUnwrap(box["xmax"]), try XCTUnwrap(box["ymax"]))
                XCTAssertTrue(0 <= xmin && xmin < xmax && xmax <= 1, "\(box)")
                XCTAssertTrue(0 <= ymin && ymin < ymax && ymax <= 1, "\(box)")
            }
            peopleSeen += detections.count
        }
        XCTAssertGreaterThan(peopleSeen, 795, "vtest.avi shows several people in most frames")
    }

    func testSeveralInputsRunConcurrentlyEachInOrder() throws {
        let inputs = [TestPaths.media("messi5.jpg"), TestPaths.media("basketball1.png"), TestPaths.media("vtest.avi")]
        let result = try runProcess(binary, ["detect", "--threads", "2"] + inputs)
        XCTAssertEqual(result.status, 0, result.stderr)
        var frames: [String: [Int]] = [:]
        for line in result.stdoutLines {
            let record = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            frames[record["source"] as? String ?? "?", default: []].append(record["frame"] as? Int ?? -1)
        }
        XCTAssertEqual(frames[inputs[0]], [0])
        XCTAssertEqual(frames[inputs[1]], [0])
        XCTAssertEqual(frames[inputs[2]], Array(0..<795))
    }

    /// An input given twice runs twice, the second run under a name of its own (`#2`), so its records, and its
    /// frames kept for `--annotate` (keyed by source and frame), never mix with the first run's.
    func testAnInputGivenTwiceRunsTwiceUnderTwoNames() throws {
        let video = TestPaths.media("vtest.avi"), again = TestPaths.media("vtest.avi") + "#2"
        let dir = try TestPaths.temporaryDirectory()
        let result = try runProcess(binary, ["detect", "--threads", "2", "--annotate", dir.path, video, video])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("\(video) is given more than once") && result.stderr.contains(again), result.stderr)
        var frames: [String: [Int]] = [:], withDetections: [String: Int] = [:], detections: [String: [String]] = [:]
        for line in result.stdoutLines {
            let record = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let source = record["source"] as? String ?? "?", found = record["detections"] as? [Any] ?? []
            frames[source, default: []].append(record["frame"] as? Int ?? -1)
            if !found.isEmpty { withDetections[source, default: 0] += 1 }
            let canonical = try JSONSerialization.data(withJSONObject: found, options: .sortedKeys)
            detections[source, default: []].append(String(decoding: canonical, as: UTF8.self))
        }
        XCTAssertEqual(frames.keys.sorted(), [video, again])
        XCTAssertEqual(frames[video], Array(0..<795))
        XCTAssertEqual(frames[again], Array(0..<795))
        XCTAssertEqual(detections[video], detections[again], "the same video, the same detections")
        // One JPEG per frame with detections, for each run, under each name's file stem.
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        XCTAssertGreaterThan(withDetections[video] ?? 0, 700)
        XCTAssertEqual(files.filter { $0.hasPrefix("vtest.avi-") }.count, withDetections[video])
        XCTAssertEqual(files.filter { $0.hasPrefix("vtest.avi_2-") }.count, withDetections[again])
        XCTAssertEqual(files.count, (withDetections[video] ?? 0) + (withDetections[again] ?? 0))
    }

    /// The name a repeat gets is one no input has: here `m.jpg#2` is an input of its own, so the repeat is `m.jpg#3`.
    func testARepeatsNameIsNoOtherInputs() throws {
        let dir = try TestPaths.temporaryDirectory()
        let image = dir.appendingPathComponent("m.jpg").path, named = dir.appendingPathComponent("m.jpg#2").path
        for link in [image, named] { try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: TestPaths.media("messi5.jpg")) }
        let result = try runProcess(binary, ["detect", image, image, named])
        XCTAssertEqual(result.status, 0, result.stderr)
        let sources = try result.stdoutLines.map { line in
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])["source"] as? String ?? "?"
        }
        XCTAssertEqual(sources.sorted(), [image, named, image + "#3"].sorted())
    }

    func testImageSequence() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let made = try runProcess("/usr/bin/ffmpeg", ["-v", "error", "-nostdin", "-i", TestPaths.media("vtest.avi"), "-frames:v", "5",
                                                      dir.appendingPathComponent("img%03d.png").path])
        XCTAssertEqual(made.status, 0, made.stderr)
        let pattern = dir.appendingPathComponent("img%03d.png").path
        let result = try runProcess(binary, ["detect", pattern])
        XCTAssertEqual(result.status, 0, result.stderr)
        let records = try result.stdoutLines.map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        XCTAssertEqual(records.map { $0["frame"] as? Int }, [0, 1, 2, 3, 4])
        XCTAssertEqual(records.map { $0["file"] as? String }, (1...5).map { dir.appendingPathComponent(String(format: "img%03d.png", $0)).path },
                       "each record names its file, not only the pattern")
        XCTAssertTrue(records.allSatisfy { $0["source"] as? String == pattern && $0["width"] as? Int == 768 })
        XCTAssertTrue(records.allSatisfy { !($0["detections"] as? [Any] ?? []).isEmpty }, "people in every frame")
    }

    func testThresholdAndTimeFields() throws {
        let result = try runProcess(binary, ["detect", "--threshold", "0.9", TestPaths.media("basketball1.png")])
        XCTAssertEqual(result.status, 0, result.stderr)
        let record = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(result.stdoutLines.first, result.stderr).utf8)) as? [String: Any])
        let detections = try XCTUnwrap(record["detections"] as? [[String: Any]])
        XCTAssertEqual(detections.count, 2, "basketball1.png: two players above 0.9")
        XCTAssertTrue(detections.allSatisfy { ($0["score"] as? Double ?? -1) >= 0.9 })
        let time = try XCTUnwrap(record["time"] as? String)
        XCTAssertNotNil(time.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression), time)
        XCTAssertNotNil(ISO8601DateFormatter.withFractionalSeconds.date(from: time))
    }

    // MARK: Bad input: one clear line on stderr, a non-zero exit, never a crash or a hang.

    func assertFailsCleanly(_ arguments: [String], mentioning needles: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try runProcess(binary, arguments)
        XCTAssertEqual(result.status, 1, "exit status; stderr: \(result.stderr)", file: file, line: line)
        XCTAssertEqual(result.stderrLines.count, 1, "exactly one line on stderr: \(result.stderr)", file: file, line: line)
        for needle in needles {
            XCTAssertTrue(result.stderr.contains(needle), "stderr should mention \(needle): \(result.stderr)", file: file, line: line)
        }
        XCTAssertEqual(result.stdout, "", file: file, line: line)
    }

    func testNonexistentInput() throws {
        try assertFailsCleanly(["detect", "/nonexistent/video.avi"], mentioning: ["/nonexistent/video.avi", "No such file"])
    }

    /// One-character inputs (`-` for stdin, `0` for a camera as OpenCV numbers them) used to trap inside
    /// Foundation's path handling; none of them exists here.
    func testOneCharacterInputsFailCleanly() throws {
        for input in ["x", "-", "0", "é"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: input), input)
            try assertFailsCleanly(["detect", input], mentioning: [input + ": ", "No such file"])
        }
    }

    func testAnEmptyInputIsAUsageError() throws {
        let result = try runProcess(binary, ["detect", ""])
        XCTAssertEqual(result.status, 64, result.stderr)
        XCTAssertTrue(result.stderr.contains("an input is empty"), result.stderr)
        XCTAssertEqual(result.stdout, "")
    }

    /// A failure of a repeated input is reported under the run's own name, so the user can tell the runs apart.
    func testAFailingRepeatIsReportedUnderItsOwnName() throws {
        let path = try garbageFile()
        let result = try runProcess(binary, ["detect", path, path])
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stderrLines.contains { $0.contains("\(path): not a recognised media file") }, result.stderr)
        XCTAssertTrue(result.stderrLines.contains { $0.contains("\(path)#2: not a recognised media file") }, result.stderr)
        XCTAssertEqual(result.stdout, "")
    }

    /// Stream URLs that differ only in their password are different inputs, named apart in records (which never
    /// carry the password) without being called repeats; the same URL again is a repeat.
    func testURLsThatDifferOnlyInTheirPasswordAreNotCalledRepeats() throws {
        let port = freeLoopbackPort()  // nothing listens: each input fails at once, under its own name
        let first = "http://cam:first-secret@127.0.0.1:\(port)/x.ts", second = "http://cam:second-secret@127.0.0.1:\(port)/x.ts"
        let result = try runProcess(binary, ["detect", first, second, first])
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertFalse(result.stderr.contains("secret"), result.stderr)
        XCTAssertEqual(result.stderrLines.filter { $0.contains("differs from an earlier input only in its password") && $0.contains("#2") }.count, 1,
                       result.stderr)
        XCTAssertEqual(result.stderrLines.filter { $0.contains("is given more than once") && $0.contains("#3") }.count, 1, result.stderr)
    }

    /// /dev/stdin is a pipe here, read like a file: every frame, none dropped as if it were a camera.
    func testStandardInputIsReadLikeAFile() throws {
        let result = try runProcess("/bin/sh", ["-c", "cat \"$1\" | \"$0\" detect /dev/stdin", binary, TestPaths.media("vtest.avi")])
        XCTAssertEqual(result.status, 0, result.stderr)
        let records = try result.stdoutLines.map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        XCTAssertEqual(records.map { $0["frame"] as? Int }, Array(0..<795))
        XCTAssertTrue(records.allSatisfy { ($0["dropped"] as? Int ?? 0) == 0 }, "nothing dropped")
    }

    /// 20 kB that no demuxer recognises, named like a video.
    private func garbageFile() throws -> String {
        let path = try TestPaths.temporaryDirectory().appendingPathComponent("garbage.mp4").path
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data((0..<20000).map { UInt8(truncatingIfNeeded: ($0 * 7919) >> 3) })))
        return path
    }

    func testNonMediaInput() throws {
        let path = try garbageFile()
        try assertFailsCleanly(["detect", path], mentioning: [path, "not a recognised media file"])
    }

    func testMissingModel() throws {
        try assertFailsCleanly(["detect", "--model", "/nonexistent/model.pb", TestPaths.media("messi5.jpg")],
                               mentioning: ["/nonexistent/model.pb", "no such file"])
    }

    /// A record names its input, which may hold any character: JSON escapes C0 controls, and Sightline escapes DEL and
    /// C1 (U+0080-U+009F) as well, so no line it writes can drive the terminal it is read on.
    func testControlCharactersInNamesAreEscapedInRecords() throws {
        let dir = try TestPaths.temporaryDirectory()
        let image = dir.appendingPathComponent("cam\u{1B}[2J\u{7F}\u{9B}31m-é.jpg").path
        try FileManager.default.createSymbolicLink(atPath: image, withDestinationPath: TestPaths.media("messi5.jpg"))
        let result = try runProcess(binary, ["detect", image])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdoutLines.count, 1, result.stdout)
        let line = try XCTUnwrap(result.stdoutLines.first)
        XCTAssertFalse(line.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }, String(line))
        XCTAssertTrue(line.contains(#"cam\u001b[2J\u007f\u009b31m-é.jpg"#), String(line))
        let record = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        XCTAssertEqual(record["source"] as? String, image, "the same name, once decoded")
    }

    /// A label file with an id given twice, or a blank line that would leave an id unnamed, is refused naming the
    /// file and the line, before anything is detected.
    func testMistakenLabelFilesFailCleanly() throws {
        let dir = try TestPaths.temporaryDirectory()
        let map = dir.appendingPathComponent("map.pbtxt").path, plain = dir.appendingPathComponent("labels.txt").path
        try Data("item { id: 1 name: \"person\" }\nitem { id: 1 name: \"pedestrian\" }\n".utf8).write(to: URL(fileURLWithPath: map))
        try Data("\nperson\n".utf8).write(to: URL(fileURLWithPath: plain))
        try assertFailsCleanly(["detect", "--labels", map, TestPaths.media("messi5.jpg")],
                               mentioning: ["cannot read labels \(map): line 2: id 1 is given more than once (first at line 1)"])
        try assertFailsCleanly(["detect", "--labels", plain, TestPaths.media("messi5.jpg")],
                               mentioning: ["cannot read labels \(plain): line 1 is blank"])
    }

    /// Each hostile graph of issue 8 (fuzz/corpus/model) ends `detect` with one line naming the model, exit status 1.
    func testHostileModelsFailCleanly() throws {
        let seeds = TestPaths.repoRoot.appendingPathComponent("fuzz/corpus/model")
        let files = try FileManager.default.contentsOfDirectory(atPath: seeds.path).filter { $0 != "tiny-ssd.pb" }.sorted()
        XCTAssertGreaterThanOrEqual(files.count, 17)
        for file in files {
            let path = seeds.appendingPathComponent(file).path
            try assertFailsCleanly(["detect", "--model", path, TestPaths.media("messi5.jpg")], mentioning: ["cannot read model \(path): "])
        }
    }

    /// A disk that fills up mid-line (simulated by a file size limit: the write is cut short, then fails) leaves
    /// whole JSON lines, never a truncated last one; the error is reported.
    func testFullDiskLeavesOnlyWholeLines() throws {
        let out = try TestPaths.temporaryDirectory().appendingPathComponent("out.jsonl").path
        // `ulimit -f 3`: 3 KiB; SIGXFSZ ignored (and so for sightline too), so the write fails with EFBIG instead.
        let result = try runProcess("/bin/bash", ["-c", "trap '' XFSZ; ulimit -f 3; exec \"$0\" detect \"$1\" > \"$2\"",
                                                  binary, TestPaths.media("vtest.avi"), out])
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("cannot write the output"), result.stderr)
        let written = try Data(contentsOf: URL(fileURLWithPath: out))
        XCTAssertGreaterThan(written.count, 0)
        XCTAssertLessThan(written.count, 3 * 1024)
        XCTAssertEqual(written.last, UInt8(ascii: "\n"), "the file ends with a whole line")
        for line in written.split(separator: UInt8(ascii: "\n")) {
            XCTAssertNotNil(try? JSONSerialization.jsonObject(with: Data(line)), String(decoding: line, as: UTF8.self))
        }
    }

    /// A graph outside the supported family (a hard-swish after the first convolution, as SSDLite-MobileNetV3 starts)
    /// is refused naming its first unsupported node walking from the input, its op and what is supported.
    func testModelOutsideTheFamilyNamesItsFirstUnsupportedNode() throws {
        let path = TestPaths.repoRoot.appendingPathComponent("fuzz/corpus/model/hard-swish-near-input.pb").path
        try assertFailsCleanly(["detect", "--model", path, TestPaths.media("messi5.jpg")],
                               mentioning: ["node 'hs/add' (op AddV2)", "supported are SSD and SSDLite detectors on MobileNetV1 and MobileNetV2"])
    }

    func testTruncatedModel() throws {
        let whole = try Data(contentsOf: URL(fileURLWithPath: TestPaths.model))
        let path = try TestPaths.temporaryDirectory().appendingPathComponent("cut.pb").path
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: whole.prefix(100_000)))
        try assertFailsCleanly(["detect", "--model", path, TestPaths.media("messi5.jpg")], mentioning: [path, "not a TensorFlow GraphDef"])
    }

    func testNonSSDModel() throws {
        // An image file is no graph at all.
        try assertFailsCleanly(["detect", "--model", TestPaths.media("messi5.jpg"), TestPaths.media("messi5.jpg")],
                               mentioning: ["messi5.jpg"])
    }

    func testAnOutputThatCannotBeWrittenIsAnError() throws {
        let result = try runProcess("/bin/sh", ["-c", "exec \"$0\" detect \"$1\" > /dev/full", binary, TestPaths.media("messi5.jpg")])
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("cannot write the output"), result.stderr)
    }

    func testOneBadInputAmongGoodOnesStillDetectsTheRest() throws {
        let result = try runProcess(binary, ["detect", "/nonexistent.png", TestPaths.media("messi5.jpg")])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.stdoutLines.count, 1, "messi5.jpg is still detected")
        XCTAssertTrue(result.stderr.contains("/nonexistent.png"), result.stderr)
    }
}

extension ISO8601DateFormatter {
    nonisolated(unsafe) static let withFractionalSeconds: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }()
}
