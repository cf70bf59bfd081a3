import ArgumentParser
import Foundation

@main
struct Sightline: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Video-stream object detection: SSDLite-MobileNetV2 on oneDNN.",
        subcommands: [Detect.self, Run.self, Check.self, Tail.self, Bench.self, Calibrate.self])
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
