import Foundation
import XCTest
@testable import Daemon

/// Priority prefixes only for the journal: systemd names its stream in JOURNAL_STREAM ("DEV:INODE").
final class JournalLogHandlerTests: XCTestCase {
    func testPrefixesOnlyWhenTheDescriptorIsTheJournalStream() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("journal-\(UUID().uuidString)").path
        let fd = open(path, O_CREAT | O_RDWR, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer {
            close(fd)
            unlink(path)
        }
        var info = stat()
        XCTAssertEqual(fstat(fd, &info), 0)
        let same = "\(info.st_dev):\(info.st_ino)"
        XCTAssertTrue(JournalLogHandler.isJournalStream(descriptor: fd, environment: ["JOURNAL_STREAM": same]))
        // Inherited by a child whose stderr went elsewhere: another inode.
        XCTAssertFalse(JournalLogHandler.isJournalStream(descriptor: fd, environment: ["JOURNAL_STREAM": "\(info.st_dev):\(info.st_ino + 1)"]))
        XCTAssertFalse(JournalLogHandler.isJournalStream(descriptor: fd, environment: [:]))
        XCTAssertFalse(JournalLogHandler.isJournalStream(descriptor: fd, environment: ["JOURNAL_STREAM": "garbage"]))
    }
}
