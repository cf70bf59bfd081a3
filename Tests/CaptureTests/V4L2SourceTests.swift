import Capture
import Foundation
import XCTest

final class V4L2SourceTests: XCTestCase {
    func testMissingDeviceIsNamed() {
        let path = "/dev/video-sightline-missing"
        assertOpenFails(path, reason: "no such device")
    }

    func testNonDevicesAreRefused() throws {
        assertOpenFails("/dev/null", reason: "not a video capture device")
        let file = try temporaryDirectory(self).appendingPathComponent("video0")
        try Data("not a camera".utf8).write(to: file)
        assertOpenFails(file.path, reason: "not a video capture device")
    }

    /// Stable /dev/v4l/by-id links are kept as given; messages add where they point.
    func testSymlinkKeepsItsNameAndShowsItsTarget() throws {
        let directory = try temporaryDirectory(self)
        let target = directory.appendingPathComponent("video7")
        try Data().write(to: target)
        let link = directory.appendingPathComponent("usb-Sightline_Test_Camera-video-index0").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target.path)
        assertOpenFails(link, reason: "not a video capture device [\(target.resolvingSymlinksInPath().path)]")
    }

    func testInvalidRequestsAreRefusedBeforeOpening() {
        assertOpenFails("/dev/null", fps: 0, reason: "invalid frame rate 0.0")
        assertOpenFails("/dev/null", width: -640, reason: "invalid frame size -640")
    }

    /// Runs only where a camera is attached; SIGHTLINE_TEST_CAMERA picks one instead of the first /dev/video*.
    func testRealCameraDeliversTimedFrames() throws {
        let devices = ProcessInfo.processInfo.environment["SIGHTLINE_TEST_CAMERA"].map { [$0] }
            ?? ((try? FileManager.default.contentsOfDirectory(atPath: "/dev")) ?? [])
                .filter { $0.hasPrefix("video") }.sorted().map { "/dev/" + $0 }
        // Cameras also expose metadata-only nodes, and some boards codec nodes; use the first that captures video.
        var opened: V4L2Source?
        var failures: [CaptureError] = []
        for device in devices where opened == nil {
            do {
                opened = try V4L2Source(device: device, sourceID: "camera")
            } catch let error as CaptureError {
                failures.append(error)
            }
        }
        guard let source = opened else {
            // A camera that is there but cannot be opened (busy, no permission) is a failure, not a skip.
            let problems = failures.filter { !$0.reason.hasPrefix("not a video capture device") }
            guard problems.isEmpty else { return XCTFail(problems.map(\.description).joined(separator: "; ")) }
            throw XCTSkip(devices.isEmpty ? "no camera found: no /dev/video* device"
                                          : "no camera found: \(devices.joined(separator: ", ")) capture no video")
        }
        XCTAssertTrue(source.isLive)
        XCTAssertGreaterThan(source.width, 0)
        XCTAssertGreaterThan(source.height, 0)
        XCTAssertTrue(["YUYV", "MJPG", "RGB3"].contains(source.pixelFormat), source.pixelFormat)

        var lastPts = -Double.infinity
        var lastInstant = ContinuousClock.now - .seconds(60)
        for sequence in 0..<10 {
            let frame = try XCTUnwrap(source.next())
            defer { frame.pixels.recycle() }
            XCTAssertEqual(frame.sourceID, "camera")
            XCTAssertEqual(frame.sequence, sequence)
            XCTAssertEqual(frame.width, source.width)
            XCTAssertEqual(frame.height, source.height)
            let pts = try XCTUnwrap(frame.pts)
            if sequence == 0 { XCTAssertEqual(pts, 0) }
            XCTAssertGreaterThan(pts, lastPts)
            XCTAssertGreaterThan(frame.captureInstant, lastInstant)
            XCTAssertLessThanOrEqual(frame.captureInstant, .now)
            // Wall-clock time, not a monotonic one (which would be off by the uptime or decades).
            XCTAssertLessThan(abs(frame.captureTime.timeIntervalSinceNow), 60, "capture time is close to now")
            lastPts = pts
            lastInstant = frame.captureInstant
        }

        // close() from another thread ends the capture loop (the camera would stream forever otherwise).
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(300)) { source.close() }
        while let frame = try source.next() { frame.pixels.recycle() }
        XCTAssertNil(try source.next(), "stays closed")
    }

    private func assertOpenFails(_ path: String, width: Int? = nil, fps: Double? = nil, reason: String,
                                 file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try V4L2Source(device: path, width: width, fps: fps), file: file, line: line) { error in
            guard let error = error as? CaptureError else {
                return XCTFail("\(error) is not a CaptureError", file: file, line: line)
            }
            XCTAssertEqual(error.input, path, file: file, line: line)
            XCTAssertEqual(error.reason, reason, file: file, line: line)
            XCTAssertTrue(error.description.hasPrefix(path + ": "), error.description, file: file, line: line)
        }
    }
}
