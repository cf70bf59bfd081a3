import ArgumentParser
import Daemon
import Foundation

@main
struct Sightline: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Video-stream object detection: SSDLite-MobileNetV2 on oneDNN.",
        // Every subcommand answers --version too: the parser looks for it along the whole command stack.
        version: Service.version,
        subcommands: [Detect.self, Run.self, Check.self, Tail.self, Bench.self, Calibrate.self])
}

/// Worker threads as asked for on the command line: 0 means one per core (as `workers: 0` does in the
/// config). More than the cores only costs memory (each worker owns an engine), so it is allowed with a warning.
func workerThreads(_ requested: Int) -> Int {
    let cores = ProcessInfo.processInfo.activeProcessorCount
    guard requested > 0 else { return cores }
    if requested > cores {
        reportError("WARNING: --threads \(requested) is more than the \(cores) cores: the extra workers add no speed, "
                    + "and each holds its own engine's memory")
    }
    return requested
}

/// Runs `body`; a failure becomes one line on stderr naming the problem, and exit status 1.
func failingCleanly<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as ValidationError {
        throw error
    } catch {
        reportError(error)
        throw ExitCode(1)
    }
}
