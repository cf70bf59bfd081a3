import Daemon
import Foundation
import TestSupport
import XCTest

/// The config fuzzer's corpus (fuzz/corpus/config: seeds and whatever the fuzzer kept) replayed through the
/// whole validation: every file gives a config or an error, never a crash.
final class ConfigCorpusTests: XCTestCase {
    func testFuzzCorpusReplays() throws {
        let dir = TestPaths.repoRoot.appendingPathComponent("fuzz/corpus/config")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        XCTAssertGreaterThanOrEqual(files.count, 4)
        for file in files {
            let data = try Data(contentsOf: dir.appendingPathComponent(file))
            _ = try? DaemonConfig.parse(String(decoding: data, as: UTF8.self), origin: file)
        }
    }
}
