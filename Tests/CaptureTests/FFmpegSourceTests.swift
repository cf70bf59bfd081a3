import Capture
import Foundation
import Synchronization
import Values
import XCTest

final class FFmpegSourceTests: XCTestCase {
    // MARK: Decoding

    func testVideoFileYieldsEveryFrameInOrder() throws {
        let path = try Media.path("vtest.avi")
        let source = try FFmpegSource(input: path)
        XCTAssertEqual(source.input, path)
        XCTAssertFalse(source.isLive)
        XCTAssertEqual(source.frameRate, 10)

        var count = 0
        var lastPts = -Double.infinity
        var lastInstant = ContinuousClock.now - .seconds(1)
        while let frame = try source.next() {
            defer { frame.pixels.recycle() }
            XCTAssertEqual(frame.sourceID, path)
            XCTAssertEqual(frame.sequence, count)
            XCTAssertEqual(frame.width, 768)
            XCTAssertEqual(frame.height, 576)
            let pts = try XCTUnwrap(frame.pts, "frame \(count) has no pts")
            XCTAssertGreaterThan(pts, lastPts, "frame \(count)")
            XCTAssertGreaterThanOrEqual(frame.captureInstant, lastInstant)
            lastPts = pts
            lastInstant = frame.captureInstant
            count += 1
        }
        XCTAssertEqual(count, 795)
        XCTAssertEqual(lastPts, 79.4, accuracy: 1e-9)
        XCTAssertEqual(source.corruptPackets, 0)
        XCTAssertNil(try source.next(), "the stream stays ended")
    }

    func testVideoFramesAreByteIdenticalToFFmpegCLI() throws {
        XCTAssertEqual(try matchAgainstCLI(Media.path("vtest.avi")), 795)
    }

    func testJPEGIsByteIdenticalToFFmpegCLI() throws {
        XCTAssertEqual(try matchAgainstCLI(Media.path("messi5.jpg")), 1)
    }

    func testGrayPNGIsByteIdenticalToFFmpegCLI() throws {
        XCTAssertEqual(try matchAgainstCLI(Media.path("basketball1.png")), 1)
    }

    /// Camera streams often declare BT.709 or full range; the conversion must follow the tags as the CLI does.
    /// The H.264 clips have B-frames, so their last frames only come out when the decoder is drained.
    func testTaggedMatricesRangesAndOddSizesMatchFFmpegCLI() throws {
        let directory = try temporaryDirectory(self)
        let clips: [(name: String, options: [String])] = [
            ("bt709.mkv", ["-pix_fmt", "yuv420p", "-colorspace", "bt709", "-c:v", "ffv1"]),
            ("full-range-bt709.mkv", ["-pix_fmt", "yuv420p", "-color_range", "pc", "-colorspace", "bt709", "-c:v", "ffv1"]),
            ("full-range.mkv", ["-pix_fmt", "yuv420p", "-color_range", "pc", "-c:v", "ffv1"]),
            ("bt709-h264.mp4", ["-pix_fmt", "yuv420p", "-colorspace", "bt709", "-c:v", "libx264"]),
            ("yuvj-h264.mp4", ["-pix_fmt", "yuv420p", "-color_range", "pc", "-c:v", "libx264"]),
            ("odd-422.mkv", ["-s", "321x241", "-pix_fmt", "yuv422p", "-c:v", "ffv1"]),
            ("odd-420.mkv", ["-s", "321x241", "-pix_fmt", "yuv420p", "-c:v", "ffv1"]),
            ("nv12.mkv", ["-pix_fmt", "nv12", "-c:v", "rawvideo"]),
        ]
        for clip in clips {
            let path = directory.appendingPathComponent(clip.name).path
            try runFFmpeg(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10:duration=0.5"] + clip.options + [path])
            XCTAssertEqual(try matchAgainstCLI(path), 5, clip.name)
        }
    }

    func testFramesCarryTheGivenSourceIDAndReusePooledBuffers() throws {
        let pool = PixelBufferPool()
        let source = try FFmpegSource(input: Media.path("vtest.avi"), sourceID: "lobby", pool: pool)
        let first = try XCTUnwrap(source.next())
        XCTAssertEqual(first.sourceID, "lobby")
        XCTAssertEqual(first.pixels.rowBytes % 64, 0)
        let firstBuffer = ObjectIdentifier(first.pixels)
        first.pixels.recycle()
        let second = try XCTUnwrap(source.next())
        XCTAssertEqual(second.sequence, 1)
        XCTAssertEqual(ObjectIdentifier(second.pixels), firstBuffer, "a recycled buffer is handed out again")
    }

    func testCorruptPacketsAreSkippedAndCounted() throws {
        let directory = try temporaryDirectory(self)
        let valid = directory.appendingPathComponent("valid.avi").path
        try runFFmpeg(["-f", "lavfi", "-i", "testsrc=size=64x48:rate=5:duration=2", "-c:v", "mjpeg", valid])
        // Wipe the headers of JPEG frames 3 and 6 (each starts FF D8 FF): the AVI stays readable, those two packets do not decode.
        var data = try Data(contentsOf: URL(fileURLWithPath: valid))
        var starts: [Int] = []
        var searchFrom = data.startIndex
        while let range = data.range(of: Data([0xFF, 0xD8, 0xFF]), in: searchFrom..<data.endIndex) {
            starts.append(range.lowerBound)
            searchFrom = range.upperBound
        }
        XCTAssertEqual(starts.count, 10)
        for frame in [3, 6] {
            data.replaceSubrange(starts[frame]..<starts[frame] + 300, with: Data(count: 300))
        }
        let path = directory.appendingPathComponent("damaged.avi").path
        try data.write(to: URL(fileURLWithPath: path))

        let source = try FFmpegSource(input: path)
        var sequences: [Int] = []
        while let frame = try source.next() {
            sequences.append(frame.sequence)
            frame.pixels.recycle()
        }
        XCTAssertEqual(sequences, Array(0..<8))
        XCTAssertEqual(source.corruptPackets, 2)
    }

    func testReleasedSourceFreesItsPooledBuffers() throws {
        weak var buffer: PixelBuffer?
        weak var pool: PixelBufferPool?
        try {
            let ownPool = PixelBufferPool()
            pool = ownPool
            let source = try FFmpegSource(input: Media.path("vtest.avi"), pool: ownPool)
            let frame = try XCTUnwrap(source.next())
            buffer = frame.pixels
            // The pool now keeps the buffer as idle; both must go once nothing else holds them.
            frame.pixels.recycle()
        }()
        XCTAssertNil(pool, "the pool outlived its source")
        XCTAssertNil(buffer, "a recycled buffer outlived its pool")
    }

    // MARK: Bad inputs

    func testMissingFileThrows() throws {
        let path = try temporaryDirectory(self).appendingPathComponent("absent.mp4").path
        let error = try captureError { try FFmpegSource(input: path) }
        XCTAssertEqual(error.input, path)
        XCTAssertTrue(error.reason.lowercased().contains("no such file"), error.reason)
    }

    func testGarbageFileThrows() throws {
        let path = try temporaryDirectory(self).appendingPathComponent("garbage.mp4").path
        // Fixed pseudo-random bytes (xorshift), so the test sees the same file every run.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let bytes = (0..<65536).map { _ -> UInt8 in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return UInt8(truncatingIfNeeded: state >> 32)
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let error = try captureError { try FFmpegSource(input: path) }
        XCTAssertEqual(error.input, path)
        XCTAssertTrue(error.reason.hasPrefix("not a recognised media file"), error.reason)
    }

    func testAudioOnlyFileThrows() throws {
        let path = try temporaryDirectory(self).appendingPathComponent("tone.wav").path
        try runFFmpeg(["-f", "lavfi", "-i", "sine=frequency=440:duration=1", path])
        let error = try captureError { try FFmpegSource(input: path) }
        XCTAssertEqual(error.input, path)
        XCTAssertEqual(error.reason, "no video stream")
    }

    func testVideoCodecWithoutDecoderThrows() throws {
        let directory = try temporaryDirectory(self)
        let valid = directory.appendingPathComponent("valid.avi").path
        try runFFmpeg(["-f", "lavfi", "-i", "testsrc=size=64x48:rate=5:duration=1", "-c:v", "mjpeg", valid])
        // Renaming the MJPG fourcc leaves a well-formed AVI whose video codec nothing can decode.
        var data = try Data(contentsOf: URL(fileURLWithPath: valid))
        let tag = Data("MJPG".utf8)
        var replaced = 0
        while let range = data.range(of: tag) {
            data.replaceSubrange(range, with: Data("QQQQ".utf8))
            replaced += 1
        }
        XCTAssertGreaterThan(replaced, 0)
        let path = directory.appendingPathComponent("unknown-codec.avi").path
        try data.write(to: URL(fileURLWithPath: path))

        let error = try captureError { try FFmpegSource(input: path) }
        XCTAssertEqual(error.input, path)
        XCTAssertTrue(error.reason.hasPrefix("no decoder for video codec"), error.reason)
    }

    // MARK: Stalled network sources

    func testStalledHTTPServerTimesOutInsteadOfHanging() throws {
        let server = try StallingServer()
        defer { server.stop() }
        let url = "http://127.0.0.1:\(server.port)/x"
        // The reason shows the I/O timeout ended the wait (how long it took is a timing claim, not asserted).
        let error = try captureError { try FFmpegSource(input: url, ioTimeout: .seconds(1)) }
        XCTAssertEqual(error.input, url)
        XCTAssertTrue(error.reason.contains("timed out after 1 s"), error.reason)
    }

    func testStreamThatStallsMidwayTimesOutOnRead() throws {
        let server = try StallingServer(sending: vtestPrefix())
        defer { server.stop() }
        let url = "tcp://127.0.0.1:\(server.port)"
        // The timeout bounds each read's wall-clock wait: a short one could end a read that a loaded machine was
        // merely slow to get to, before the frames sent ahead of the stall were all read.
        let source = try FFmpegSource(input: url, ioTimeout: .seconds(10))
        XCTAssertTrue(source.isLive)
        var frames = 0
        do {
            while let frame = try source.next() {
                frame.pixels.recycle()
                frames += 1
            }
            XCTFail("the stream ended instead of timing out")
        } catch let error as CaptureError {
            XCTAssertEqual(error.input, url)
            XCTAssertTrue(error.reason.contains("timed out after 10 s"), error.reason)
        }
        XCTAssertGreaterThan(frames, 100, "frames sent before the stall arrive")
    }

    func testCloseFromAnotherThreadUnblocksStalledRead() throws {
        let server = try StallingServer(sending: vtestPrefix())
        defer { server.stop() }
        // An I/O timeout far beyond the waits below (the top of the io_timeout range, which tcp's own int timeout
        // option cannot hold): only close() can end this read in time.
        let source = try FFmpegSource(input: "tcp://127.0.0.1:\(server.port)", ioTimeout: .seconds(3600))
        let ended = DispatchSemaphore(value: 0)
        let outcome = Outcome()
        Thread {
            // "<pid>/task/<tid>": this thread's directory in /proc.
            let own = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self")
            outcome.thread.withLock { $0 = own }
            do {
                while let frame = try source.next() {
                    frame.pixels.recycle()
                    outcome.frames.withLock { $0 += 1 }
                }
            } catch {
                outcome.error.withLock { $0 = "\(error)" }
            }
            ended.signal()
        }.start()

        XCTAssertEqual(server.sent.wait(timeout: .now() + 300), .success)
        // The reader drains what was sent (however long that takes on a loaded machine), then waits in poll() on the
        // silent socket: only then is the read that close() must end a stalled one.
        let deadline = Date().addingTimeInterval(600)
        while !(outcome.frames.withLock { $0 } > 100 && outcome.waitsInPoll()), Date() < deadline {
            if ended.wait(timeout: .now() + 0.05) == .success {
                ended.signal()
                XCTFail("the reader should be blocked, not finished")
                break
            }
        }
        XCTAssertGreaterThan(outcome.frames.withLock { $0 }, 100, "frames sent before the stall arrive")
        XCTAssertTrue(outcome.waitsInPoll(), "the reader waits on the silent socket")
        // Closed from yet another thread, so a close() that waits on the blocked read fails the test instead of
        // hanging it (stopping the server then ends the read).
        let closed = DispatchSemaphore(value: 0)
        Thread {
            source.close()
            closed.signal()
        }.start()
        XCTAssertEqual(closed.wait(timeout: .now() + 300), .success, "close() is stuck behind the blocked read")
        XCTAssertEqual(ended.wait(timeout: .now() + 300), .success, "close() did not unblock the read")
        XCTAssertNil(outcome.error.withLock { $0 }, "a closed source ends its stream rather than failing")
        XCTAssertNil(try source.next())
    }

    func testCloseIsIdempotentAndEndsTheStream() throws {
        let source = try FFmpegSource(input: Media.path("vtest.avi"))
        XCTAssertNotNil(try source.next())
        source.close()
        source.close()
        XCTAssertNil(try source.next())
    }

    // MARK: Helpers

    /// Decodes `path` with FFmpegSource and with the ffmpeg CLI, asserts every frame is byte-identical,
    /// and returns the number of frames compared.
    private func matchAgainstCLI(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws -> Int {
        let name = URL(fileURLWithPath: path).lastPathComponent
        let source = try FFmpegSource(input: path)
        let reference = try ReferenceFrames(path: path)
        var count = 0
        while let frame = try source.next() {
            defer { frame.pixels.recycle() }
            let expected = try XCTUnwrap(try reference.next(width: frame.width, height: frame.height),
                                         "ffmpeg produced fewer frames than FFmpegSource", file: file, line: line)
            let (differing, maxDelta) = compare(frame, with: expected)
            XCTAssertEqual(differing, 0, "\(name) frame \(count): \(differing) bytes differ, by up to \(maxDelta)",
                           file: file, line: line)
            count += 1
        }
        XCTAssertNil(try reference.next(width: 1, height: 1), "ffmpeg produced more frames than FFmpegSource",
                     file: file, line: line)
        return count
    }

    /// The first 3 MB of vtest.avi (about 290 frames): a valid stream start that then runs dry.
    private func vtestPrefix() throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: Media.path("vtest.avi"))).prefix(3_000_000)
    }

    private func captureError(_ body: () throws -> FFmpegSource, file: StaticString = #filePath,
                              line: UInt = #line) throws -> CaptureError {
        do {
            let source = try body()
            source.close()
        } catch let error as CaptureError {
            return error
        }
        XCTFail("expected a CaptureError", file: file, line: line)
        throw TestFailure("no CaptureError thrown")
    }
}

/// What the reader thread saw, read by the test while it runs.
private final class Outcome: Sendable {
    let frames = Mutex(0)
    let error = Mutex<String?>(nil)
    /// The reader thread's directory under /proc.
    let thread = Mutex<String?>(nil)

    /// The reader thread sleeps in poll(), as libav's network reads wait for data (its kernel wait channel).
    func waitsInPoll() -> Bool {
        guard let thread = thread.withLock({ $0 }),
              let channel = try? String(contentsOfFile: "/proc/\(thread)/wchan", encoding: .utf8) else { return false }
        return channel.contains("poll")
    }
}
