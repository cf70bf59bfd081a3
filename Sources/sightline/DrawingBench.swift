import Annotate
import Foundation
import Values

/// `sightline bench --drawing-frames FRAMES.rgb --drawing-records RECORDS.jsonl` (hidden; scripts/bench-drawing.sh):
/// the preview's drawing (`Annotator`) and MJPEG encode (`JPEGEncoder`), timed per frame on decoded frames with
/// their real detections, for the comparison with libavfilter's drawbox/drawtext (docs/BENCHMARKS.md).
enum DrawingBench {
    struct Failure: Error, CustomStringConvertible { let description: String }

    /// One JSON line: mean microseconds per frame for the drawing and the encode, over every frame and round.
    static func run(frames path: String, records: String, width: Int, height: Int, rounds: Int) throws -> String {
        let raw = try Data(contentsOf: URL(fileURLWithPath: path))
        let frameBytes = width * height * 3
        let count = raw.count / frameBytes
        guard count > 0 else { throw Failure(description: "\(path) holds no \(width)x\(height) RGB24 frame") }
        var detections = [[Detection]](repeating: [], count: count)
        for line in try String(contentsOfFile: records, encoding: .utf8).split(separator: "\n") {
            guard let record = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  record["type"] as? String == "detections", let frame = record["frame"] as? Int, frame >= 0, frame < count,
                  let objects = record["detections"] as? [[String: Any]] else { continue }
            detections[frame] = objects.compactMap { object in
                guard let box = object["box"] as? [String: Double], let xmin = box["xmin"], let ymin = box["ymin"],
                      let xmax = box["xmax"], let ymax = box["ymax"] else { return nil }
                return Detection(classID: object["class_id"] as? Int ?? 0, label: object["label"] as? String ?? "?",
                                 score: Float(object["score"] as? Double ?? 0), xmin: Float(xmin), ymin: Float(ymin),
                                 xmax: Float(xmax), ymax: Float(ymax), trackID: object["track_id"] as? Int)
            }
        }
        let pixels = PixelBuffer(width: width, height: height)
        let encoder = JPEGEncoder()
        let clock = ContinuousClock()
        var drawing = Duration.zero, encoding = Duration.zero
        var bytes = 0
        for _ in 0..<rounds {
            for frame in 0..<count {
                raw.withUnsafeBytes { source in
                    for row in 0..<height {
                        (pixels.bytes + row * pixels.rowBytes).copyMemory(from: source.baseAddress! + (frame * frameBytes + row * width * 3),
                                                                          byteCount: width * 3)
                    }
                }
                let start = clock.now
                Annotator.draw(detections[frame], on: pixels)
                let drawn = clock.now
                bytes += try encoder.encode(pixels).count
                encoding += clock.now - drawn
                drawing += drawn - start
            }
        }
        let frames = Double(count * rounds)
        func microseconds(_ d: Duration) -> String { String(format: "%.1f", Double(d / .nanoseconds(1)) / 1000 / frames) }
        return "{\"impl\":\"sightline\",\"frames\":\(count),\"rounds\":\(rounds),\"boxes\":\(detections.map(\.count).reduce(0, +)),"
            + "\"draw_us\":\(microseconds(drawing)),\"encode_us\":\(microseconds(encoding)),\"jpeg_bytes\":\(bytes / Int(frames))}"
    }
}
