import ArgumentParser
import Daemon
import Detector
import Foundation
import Logging
import Values

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon: detect on the configured sources and serve JSON lines on a Unix socket.",
        discussion: "SIGTERM/SIGINT drain and exit; SIGHUP reloads the configuration, restarting only changed sources.")

    @Option(help: "Configuration file (YAML, see docs/CONFIG.md).")
    var config: String = DaemonConfig.defaultPath

    @Option(help: "Numeric precision, overriding the config's `precision`: auto, f32, bf16 or int8.")
    var precision: PrecisionChoice?

    @Option(help: "Listen on this socket instead of the config's socket.path, e.g. to try the service's config by hand.")
    var socket: String?

    mutating func validate() throws { try validateSocketPath(socket) }

    func run() throws {
        // Before any thread exists, so that every thread inherits the blocked signals.
        let signals = BlockedSignals([SIGTERM, SIGINT, SIGHUP])
        raiseDescriptorLimit()
        LoggingSystem.bootstrap(JournalLogHandler.init)
        let logger = Logger(label: "sightline")
        // Also applied to the file as re-read on SIGHUP: the command line keeps winning.
        let overrides: @Sendable (inout DaemonConfig) -> Void = { [socket, precision] config in
            if let socket { config.socket.path = socket }
            if let precision { config.precision = precision }
        }
        var loaded = try failingCleanly { try DaemonConfig.load(path: config) }
        overrides(&loaded)
        let passed = SystemdSocketActivation.passed()
        let preflight = Preflight(loaded, origin: config, defaultModel: ModelLocation.defaultModel,
                                  checkSocket: passed.subscribers == nil, checkHTTPSocket: passed.http == nil)
        guard let model = preflight.model, preflight.problems.isEmpty else {
            reportError(ConfigError(preflight.problems))
            throw ExitCode(1)
        }
        let service = try failingCleanly {
            try Service(config: loaded, configPath: config, overrides: overrides, model: model,
                        notifier: SystemdNotifier(), logger: logger)
        }
        // Exit straight away: workers and subscribers are already drained; tearing down the engines buys nothing.
        Foundation.exit(service.run(signals: signals))
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a configuration file without running it.",
        discussion: """
            Checks what `run` checks before it starts: the file, that the model and labels load, that every label in \
            `thresholds` is the model's, that the socket's group exists, and that the subscriber and HTTP sockets can be created.
            """)

    @Option(help: "Configuration file (YAML, see docs/CONFIG.md).")
    var config: String = DaemonConfig.defaultPath

    @Option(help: "Check with this socket path instead of the config's socket.path, as `run --socket` would use.")
    var socket: String?

    mutating func validate() throws { try validateSocketPath(socket) }

    func run() throws {
        let loaded = try failingCleanly { try DaemonConfig.load(path: config).overridingSocket(socket) }
        let preflight = Preflight(loaded, origin: config, defaultModel: ModelLocation.defaultModel,
                                  runtimeDirectoryMayBeAbsent: socket == nil)
        for note in preflight.notes { StandardError.write("sightline: note: \(note)\n") }
        if !preflight.problems.isEmpty {
            reportError(ConfigError(preflight.problems))
            throw ExitCode(1)
        }
        print("\(config): OK (\(loaded.sources.count) source\(loaded.sources.count == 1 ? "" : "s"), \(loaded.workerCount) workers)")
    }
}

/// Raises the soft limit on open files to the hard limit: subscribers, sources and their reconnects all need
/// descriptors, and the soft default (often 1024) is far below what the service may use.
private func raiseDescriptorLimit() {
    var limit = rlimit()
    guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    limit.rlim_cur = limit.rlim_max
    _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
}

private func validateSocketPath(_ path: String?) throws {
    guard let path else { return }
    if let problem = UnixSocketPath.problem(path) { throw ValidationError("--socket \(problem)") }
}

private extension DaemonConfig {
    func overridingSocket(_ path: String?) -> DaemonConfig {
        var config = self
        if let path { config.socket.path = path }
        return config
    }
}
