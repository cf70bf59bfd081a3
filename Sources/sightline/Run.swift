import ArgumentParser
import Daemon
import Foundation
import Logging

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon: detect on the configured sources and serve JSON lines on a Unix socket.",
        discussion: "SIGTERM/SIGINT drain and exit; SIGHUP reloads the configuration, restarting only changed sources.")

    @Option(help: "Configuration file (YAML, see docs/CONFIG.md).")
    var config: String = DaemonConfig.defaultPath

    func run() throws {
        // Before any thread exists, so that every thread inherits the blocked signals.
        let signals = BlockedSignals([SIGTERM, SIGINT, SIGHUP])
        LoggingSystem.bootstrap(JournalLogHandler.init)
        let logger = Logger(label: "sightline")
        let loaded = try failingCleanly { try DaemonConfig.load(path: config) }
        let service = try failingCleanly {
            try Service(config: loaded, configPath: config, defaultModel: ModelLocation.defaultModel,
                        notifier: SystemdNotifier(), logger: logger)
        }
        // Exit straight away: workers and subscribers are already drained; tearing down the engines buys nothing.
        Foundation.exit(service.run(signals: signals))
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
