import Capture
import XCTest

/// Which files an image-sequence pattern stands for, and in which order (no decoding: the files are empty).
final class ImageListSourceTests: XCTestCase {
    func files(_ pattern: String, among names: [String]) throws -> [String]? {
        let dir = try temporaryDirectory(self)
        for name in names { XCTAssertTrue(FileManager.default.createFile(atPath: dir.appendingPathComponent(name).path, contents: nil), name) }
        return try ImageListSource.files(for: dir.appendingPathComponent(pattern).path)?.map { ($0 as NSString).lastPathComponent }
    }

    func testFilesComeInNumberOrderHoweverManyDigits() throws {
        let huge = "img123456789012345678901234567890.png"  // beyond Int: still a number, and the largest
        XCTAssertEqual(try files("img%d.png", among: ["img10.png", huge, "img2.png", "img010.png", "img1.png", "img.png", "imgx.png"]),
                       ["img1.png", "img2.png", "img010.png", "img10.png", huge])
    }

    func testADoubledPercentSignIsTextNotTheNumber() throws {
        // `%%d` is the text "%d"; the number is the `%03d` after it.
        XCTAssertEqual(try files("a%%d-%03d.png", among: ["a%d-002.png", "a%d-001.png", "a5-001.png", "a%5-001.png"]),
                       ["a%d-001.png", "a%d-002.png"])
        // With no conversion but `%%`, there is no sequence: the input is a file name.
        XCTAssertNil(try files("b%%d.png", among: ["b%d.png", "b%1.png"]))
    }
}
