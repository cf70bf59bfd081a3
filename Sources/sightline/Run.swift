import ArgumentParser
import Daemon
import Detector
import Foundation
import Logging

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon: detect on the configured sources and serve JSON lines on a Unix socket.",
        discussion: "SIGTERM/SIGINT drain and exit; SIGHUP reloads the configuration, restarting only changed sources.")

    @Option(help: "Configuration file (YAML, see docs/CONFIG.md).")
    var config: String = DaemonConfig.defaultPath

    @Option(help: "Numeric precision, overriding the config's `precision`: auto, f32, bf16 or int8.")
    var precision: PrecisionChoice?

    func run() throws {
        LoggingSystem.bootstrap(JournalLogHandler.init)
        let logger = Logger(label: "sightline")
        var loaded = try failingCleanly { try DaemonConfig.load(path: config) }
        if let precision { loaded.precision = precision }
        let service = try failingCleanly {
            try Service(config: loaded, configPath: config, defaultModel: ModelLocation.defaultModel,
                        notifier: SystemdNotifier(), logger: logger)
        }
        // Exit straight away: workers and subscribers are already drained; tearing down the engines buys nothing.
        Foundation.exit(service.run())
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Validate a configuration file without running it.")

    @Option(help: "Configuration file (YAML, see docs/CONFIG.md).")
    var config: String = DaemonConfig.defaultPath

    func run() throws {
        let loaded = try failingCleanly { try DaemonConfig.load(path: config) }
        let model = loaded.model ?? ModelLocation.defaultModel
        guard FileManager.default.fileExists(atPath: model) else {
            reportError("\(config): model: no such file \(model)")
            throw ExitCode(1)
        }
        print("\(config): OK (\(loaded.sources.count) source\(loaded.sources.count == 1 ? "" : "s"), \(loaded.workerCount) workers)")
    }
}
