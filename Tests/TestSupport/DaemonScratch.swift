import Foundation

/// A test's own directory for a daemon it runs: the config file and the socket live in it. Make one in `setUp`,
/// `remove()` it in `tearDown`.
public final class DaemonScratch {
    public let dir: URL
    public var socketPath: String { dir.appendingPathComponent("s.sock").path }
    public var configPath: String { dir.appendingPathComponent("sightline.yaml").path }

    public init() throws { dir = try TestPaths.temporaryDirectory() }

    public func remove() { try? FileManager.default.removeItem(at: dir) }

    public func writeConfig(_ yaml: String) throws { try yaml.write(toFile: configPath, atomically: true, encoding: .utf8) }

    /// `sightline run --config <configPath>`, then `extra`.
    public func startDaemon(_ extra: [String] = [], environment: [String: String] = [:]) throws -> BackgroundProcess {
        try BackgroundProcess(TestPaths.sightlineBinary, ["run", "--config", configPath] + extra, environment: environment)
    }
}
