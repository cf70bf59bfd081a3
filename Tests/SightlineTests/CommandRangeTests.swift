import Foundation
import TestSupport
import XCTest

/// Numeric options have the ranges the config has (docs/CONFIG.md): one step outside is a usage error naming
/// the option and its range, before anything is loaded or allocated.
final class CommandRangeTests: XCTestCase {
    func testDetectOptionsOutOfRange() throws {
        let image = TestPaths.media("messi5.jpg")
        let cases: [([String], String)] = [
            (["--threads", "100000"], "--threads must be between 0 (one per core) and 256, got 100000"),
            (["--threads", "257"], "--threads must be between 0 (one per core) and 256, got 257"),
            (["--threshold", "1.5"], "--threshold must be between 0.0 and 1.0, got 1.5"),
            (["--ring-capacity", "9223372036854775807"], "--ring-capacity must be between 1 and 256"),
            (["--ring-capacity", "0"], "--ring-capacity must be between 1 and 256, got 0"),
            (["--io-timeout", "1e-9"], "--io-timeout must be between 0.1 and 3600.0 seconds"),
            (["--io-timeout", "3601"], "--io-timeout must be between 0.1 and 3600.0 seconds"),
            (["--realtime", "--fps", "1001"], "--fps must be between 0.001 and 1000.0"),
            (["--capture-fps", "0"], "--capture-fps must be between 0.001 and 1000.0"),
            (["--size", "16385x10"], "--size must be WIDTHxHEIGHT with sides up to 16384"),
        ]
        for (options, message) in cases {
            let result = try runProcess(TestPaths.sightlineBinary, ["detect"] + options + [image])
            XCTAssertEqual(result.status, 64, "\(options): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(message), "\(options): expected \(message) in \(result.stderr)")
            XCTAssertTrue(result.stdout.isEmpty, "\(options): nothing detected")
        }
    }

    func testBenchOptionsOutOfRange() throws {
        for (options, message) in [(["--threads", "100000"], "--threads must be between 0 (one per core) and 256, got 100000"),
                                   (["--iterations", "0"], "--iterations must be between 1 and 100000, got 0"),
                                   (["--iterations", "100001"], "--iterations must be between 1 and 100000, got 100001")] {
            let result = try runProcess(TestPaths.sightlineBinary, ["bench"] + options)
            XCTAssertEqual(result.status, 64, "\(options): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(message), "\(options): expected \(message) in \(result.stderr)")
        }
    }

    func testCalibrateOptionsOutOfRange() throws {
        let image = TestPaths.media("messi5.jpg")
        for (options, message) in [(["--frames", "0"], "--frames must be between 1 and 10000"),
                                   (["--frames", "10001"], "--frames must be between 1 and 10000"),
                                   (["--every", "0"], "--every must be between 1 and 100000")] {
            let result = try runProcess(TestPaths.sightlineBinary, ["calibrate"] + options + [image])
            XCTAssertEqual(result.status, 64, "\(options): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(message), "\(options): expected \(message) in \(result.stderr)")
        }
    }
}
