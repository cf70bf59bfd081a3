import Foundation
import TestSupport
import XCTest

/// `sightline detect --annotate DIR`: the real binary on real video; the JPEGs are read back with the ffmpeg CLI.
final class AnnotateCommandTests: XCTestCase {
    let binary = TestPaths.sightlineBinary

    struct Failure: Error, CustomStringConvertible { let description: String }

    /// The picture in `file` (any format ffmpeg reads; frame `index` of a video) as packed RGB24.
    func rgb(_ file: String, frame index: Int = 0, in directory: URL) throws -> [UInt8] {
        let out = directory.appendingPathComponent("frame-\(UUID().uuidString).rgb")
        let result = try runProcess("/usr/bin/env", ["ffmpeg", "-v", "error", "-nostdin", "-y", "-i", file,
                                                     "-vf", "select=eq(n\\,\(index))", "-frames:v", "1",
                                                     "-f", "rawvideo", "-pix_fmt", "rgb24", out.path])
        guard result.status == 0 else { throw Failure(description: "ffmpeg could not decode \(file): \(result.stderr)") }
        return try [UInt8](Data(contentsOf: out))
    }

    func testAnnotatedJPEGsShowEachRecordsBoxesOnItsFrame() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // A lossless excerpt, so the annotated JPEG can be compared with the very frame that was detected.
        let clip = directory.appendingPathComponent("walk.mkv").path
        let cut = try runProcess("/usr/bin/env", ["ffmpeg", "-v", "error", "-nostdin", "-y", "-i", TestPaths.media("vtest.avi"),
                                                  "-frames:v", "12", "-c:v", "ffv1", clip])
        XCTAssertEqual(cut.status, 0, cut.stderr)
        let output = directory.appendingPathComponent("annotated")
        let run = try runProcess(binary, ["detect", "--threads", "2", "--annotate", output.path, clip])
        XCTAssertEqual(run.status, 0, run.stderr)
        let records = try run.stdoutLines.map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        XCTAssertEqual(records.count, 12)
        let written = Set(try FileManager.default.contentsOfDirectory(atPath: output.path))
        var checked = 0
        for record in records {
            let frame = try XCTUnwrap(record["frame"] as? Int)
            let detections = try XCTUnwrap(record["detections"] as? [[String: Any]])
            let name = String(format: "walk.mkv-%06d.jpg", frame)
            XCTAssertEqual(written.contains(name), !detections.isEmpty, "\(name): a JPEG exactly for the frames with detections")
            guard let first = detections.first, written.contains(name) else { continue }
            let (width, height) = (try XCTUnwrap(record["width"] as? Int), try XCTUnwrap(record["height"] as? Int))
            let annotated = try rgb(output.appendingPathComponent(name).path, in: directory)
            let original = try rgb(clip, frame: frame, in: directory)
            XCTAssertEqual(annotated.count, width * height * 3, "\(name) is a \(width)x\(height) picture")
            XCTAssertEqual(original.count, width * height * 3)
            guard annotated.count == original.count, annotated.count == width * height * 3 else { continue }
            // Along the box's left and right edges the picture changed; a few pixels inside them it did not.
            let box = try XCTUnwrap(first["box"] as? [String: Double])
            let x0 = Int((try XCTUnwrap(box["xmin"]) * Double(width)).rounded())
            let x1 = Int((try XCTUnwrap(box["xmax"]) * Double(width)).rounded()) - 1
            let y0 = Int((try XCTUnwrap(box["ymin"]) * Double(height)).rounded())
            let y1 = Int((try XCTUnwrap(box["ymax"]) * Double(height)).rounded()) - 1
            func change(atColumn x: Int) -> Double {
                let rows = (y0 + (y1 - y0) / 4)...(y1 - (y1 - y0) / 4)
                let total = rows.reduce(0) { sum, y in
                    let i = (y * width + min(max(x, 0), width - 1)) * 3
                    return sum + (0..<3).reduce(0) { $0 + abs(Int(annotated[i + $1]) - Int(original[i + $1])) }
                }
                return Double(total) / Double(rows.count)
            }
            let edges = (change(atColumn: x0) + change(atColumn: x1)) / 2
            let inside = (change(atColumn: x0 + 5) + change(atColumn: x1 - 5)) / 2
            XCTAssertGreaterThan(edges, 100, "\(name): the box's edges are drawn at the record's box")
            XCTAssertGreaterThan(edges, 4 * inside, "\(name): drawn at the edges, not inside (edges \(edges), inside \(inside))")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 5, "vtest.avi shows people in most of its first frames")
    }

    /// An empty --annotate is a usage error, as an empty input is, not the current directory.
    func testAnEmptyDirectoryIsAUsageError() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = try runProcess("/bin/sh", ["-c", "cd \"$1\" && exec \"$0\" detect --annotate '' \"$2\"",
                                             binary, directory.path, TestPaths.media("messi5.jpg")])
        XCTAssertEqual(run.status, 64, run.stderr)
        XCTAssertTrue(run.stderr.contains("--annotate is empty: give the directory to write the annotated frames into"), run.stderr)
        XCTAssertEqual(run.stdout, "", "nothing is detected")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [], "nothing is written in the current directory")
    }

    func testAnUnwritableDirectoryIsAClearError() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let blocker = directory.appendingPathComponent("file")
        try Data("x".utf8).write(to: blocker)
        let run = try runProcess(binary, ["detect", "--annotate", blocker.appendingPathComponent("out").path, TestPaths.media("messi5.jpg")])
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.contains("--annotate: cannot create the directory"), run.stderr)
        XCTAssertTrue(run.stdout.isEmpty, "nothing is detected when the output cannot be written")
    }
}
