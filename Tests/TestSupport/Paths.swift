import Foundation
import Synchronization

/// Where tests find the real model and media that `scripts/setup.sh` puts in the repo's `.cache/`.
public enum TestPaths {
    public static let repoRoot: URL = {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while dir.path != "/" && !FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
            dir.deleteLastPathComponent()
        }
        return dir
    }()

    public static let model = repoRoot.appendingPathComponent(".cache/models/pedestrian-ssdlite/frozen_inference_graph.pb").path
    public static func media(_ name: String) -> String { repoRoot.appendingPathComponent(".cache/media/\(name)").path }

    /// The `sightline` binary of this test run's build configuration: beside the test executable.
    public static var sightlineBinary: String {
        let testExecutable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        return testExecutable.deletingLastPathComponent().appendingPathComponent("sightline").path
    }

    /// A new directory, removed when the test process exits (tests leave nothing behind in /tmp).
    public static func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sightline-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        removedAtExit.withLock { directories in
            if directories.isEmpty { atexit { TestPaths.removeTemporaryDirectories() } }
            directories.append(dir)
        }
        return dir
    }

    private static let removedAtExit = Mutex<[URL]>([])

    private static func removeTemporaryDirectories() {
        for dir in removedAtExit.withLock({ $0 }) { try? FileManager.default.removeItem(at: dir) }
    }
}

/// FNV-1a 64 over packed bytes, as the fixture script hashes decoded frames.
public func fnv1a64(_ bytes: UnsafeRawBufferPointer, hash start: UInt64 = 0xcbf2_9ce4_8422_2325) -> UInt64 {
    var hash = start
    for byte in bytes {
        hash ^= UInt64(byte)
        hash = hash &* 0x100_0000_01b3
    }
    return hash
}
