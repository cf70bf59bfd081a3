import ArgumentParser
import Detector
import Foundation

/// Where the bundled default model lives: `$SIGHTLINE_MODEL`, then an installed copy beside the binary
/// (`../share/sightline/models`), then the `.cache/` of the source checkout the binary was built in.
enum ModelLocation {
    static let relativePath = "models/pedestrian-ssdlite/frozen_inference_graph.pb"

    static var defaultModel: String {
        if let path = ProcessInfo.processInfo.environment["SIGHTLINE_MODEL"], !path.isEmpty { return path }
        let executable = URL(fileURLWithPath: executablePath).resolvingSymlinksInPath()
        var dir = executable.deletingLastPathComponent()
        let installed = dir.deletingLastPathComponent().appendingPathComponent("share/sightline/\(relativePath)").path
        if FileManager.default.fileExists(atPath: installed) { return installed }
        while dir.path != "/" {
            let candidate = dir.appendingPathComponent(".cache/\(relativePath)").path
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
            dir.deleteLastPathComponent()
        }
        return installed
    }

    /// The running binary itself, however it was started (by name through PATH, or relative to another
    /// directory): arguments[0] only says how it was called.
    static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}

extension PrecisionChoice: ExpressibleByArgument {}
