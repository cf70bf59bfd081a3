import Capture
import Detector
import Foundation
import HTTP
import Sink
import Values
import TestSupport
import XCTest

/// The HTTP module's parts without a server: what the frame tap copies, what the preview encodes, what /metrics says.
final class PreviewAndMetricsTests: XCTestCase {
    func frame(_ sequence: Int, source: String = "cam") -> Frame {
        let pixels = PixelBuffer(width: 64, height: 48)
        pixels.bytes.initializeMemory(as: UInt8.self, repeating: 90, count: pixels.rowBytes * 48)
        return Frame(sourceID: source, sequence: sequence, pts: nil, captureTime: Date(), captureInstant: .now, pixels: pixels)
    }

    func record(_ frame: Int, source: String = "cam", detections: [Detection] = [], dropped: Int = 0) -> DetectionRecord {
        DetectionRecord(source: source, frame: frame, seq: frame, pts: nil, time: Date(), captureTime: Date(), width: 64, height: 48,
                        latencyMs: 30, inferMs: 12, dropped: dropped, detections: detections)
    }

    let person = Detection(classID: 1, label: "person", score: 0.9, xmin: 0.25, ymin: 0.25, xmax: 0.75, ymax: 0.75)

    /// Waits (bounded) for the preview thread to publish a picture.
    func picture(_ hub: PreviewHub, _ source: String) -> PreviewHub.Picture? {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let picture = hub.picture(source) { return picture }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return nil
    }

    func testNothingIsCopiedOrEncodedWhileNobodyWatches() {
        let hub = PreviewHub(options: HTTPOptions())
        defer { hub.stop() }
        for n in 0..<5 {
            hub.tap(frame(n))
            hub.record(record(n, detections: [person]))
        }
        Thread.sleep(forTimeInterval: 0.2)
        XCTAssertNil(hub.picture("cam"))
        XCTAssertEqual(hub.picturesEncoded, 0)
        XCTAssertEqual(hub.activity("cam")?.objects, 1, "the record is still counted for the status")
    }

    func testAWatchedSourceGetsAnnotatedPicturesAtTheCappedRate() throws {
        let hub = PreviewHub(options: HTTPOptions(previewFPS: 0.5))
        defer { hub.stop() }
        hub.watch("cam")
        hub.tap(frame(7))
        hub.tap(frame(8))  // within 2 s of frame 7: not copied
        hub.record(record(7, detections: [person]))
        hub.record(record(8, detections: [person]))
        let first = try XCTUnwrap(picture(hub, "cam"))
        XCTAssertEqual(first.frame, 7)
        XCTAssertEqual(first.width, 64)
        XCTAssertEqual(Array(first.jpeg.prefix(2)), [0xFF, 0xD8])
        Thread.sleep(forTimeInterval: 0.2)
        XCTAssertEqual(hub.picturesEncoded, 1, "frame 8 came too soon after frame 7 for 0.5 fps")
        XCTAssertNil(hub.picture("other"))
    }

    func testMetricsCountRecordsAndParseAsPrometheusText() throws {
        let metrics = DaemonMetrics()
        metrics.record(record(0, detections: [person, person]))
        metrics.record(record(3, detections: [person], dropped: 2))
        metrics.record(record(0, source: "door"))  // a reopened or second source starts at frame 0
        let text = String(decoding: metrics.render(sources: [SourceStatus(name: "cam", state: .up, fps: 9, droppedTotal: 2, reconnects: 1),
                                                             SourceStatus(name: "door", state: .down, fps: 0, droppedTotal: 0, reconnects: 0)],
                                                   subscribers: .init(connected: 2, disconnectedStuck: 1, refusedOverLimit: 0), streamClients: 3),
                          as: UTF8.self)
        let samples = try PrometheusText.parse(text)
        XCTAssertEqual(samples["sightline_frames_detected_total{source=\"cam\"}"], 2)
        XCTAssertEqual(samples["sightline_frames_captured_total{source=\"cam\"}"], 4, "frames 0 to 3")
        XCTAssertEqual(samples["sightline_frames_dropped_total{reason=\"queue_full\",source=\"cam\"}"], 2)
        XCTAssertEqual(samples["sightline_detections_total{label=\"person\",source=\"cam\"}"], 3)
        XCTAssertEqual(samples["sightline_frames_detected_total{source=\"door\"}"], 1)
        XCTAssertNil(samples["sightline_detections_total{label=\"person\",source=\"door\"}"])
        XCTAssertEqual(samples["sightline_inference_seconds_count{source=\"cam\"}"], 2)
        XCTAssertEqual(samples["sightline_inference_seconds_sum{source=\"cam\"}"] ?? 0, 0.024, accuracy: 1e-9)
        XCTAssertEqual(samples["sightline_capture_to_emit_seconds_count{source=\"cam\"}"], 2)
        XCTAssertEqual(samples["sightline_source_up{source=\"cam\"}"], 1)
        XCTAssertEqual(samples["sightline_source_up{source=\"door\"}"], 0)
        XCTAssertEqual(samples["sightline_source_reconnects{source=\"cam\"}"], 1)
        XCTAssertEqual(samples["sightline_subscribers"], 2)
        XCTAssertEqual(samples["sightline_subscribers_disconnected_stuck"], 1)
        XCTAssertEqual(samples["sightline_http_stream_clients"], 3)
        XCTAssertGreaterThan(samples["process_resident_memory_bytes"] ?? 0, 1_000_000)
        XCTAssertNotNil(samples["process_cpu_seconds_total"])
    }

    func testTheStrictParserRefusesWhatPrometheusWouldRefuse() {
        for bad in ["metric 1", "# TYPE m counter\nm{l=unquoted} 1", "# TYPE m counter\nm one", "# TYPE m counter\n# TYPE m gauge\nm 1",
                    "# TYPE h histogram\nh_bucket{le=\"1\"} 5\nh_bucket{le=\"+Inf\"} 4\nh_count 4"] {
            XCTAssertThrowsError(try PrometheusText.parse(bad), bad)
        }
        XCTAssertEqual(try PrometheusText.parse("# HELP m a help\n# TYPE m gauge\nm{a=\"x\",b=\"y\"} 2.5\n")["m{a=\"x\",b=\"y\"}"], 2.5)
    }
}
