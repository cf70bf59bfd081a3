import Capture
import Detector
import Foundation
import FrameRing
import Logging
import Sink
import Synchronization

/// The running daemon: the model, the socket, the pipeline and one supervisor per source, driven by a
/// once-a-tick loop that reopens failed sources with jittered exponential backoff, sends heartbeats,
/// keeps systemd informed, and applies reloads.
public final class Service: @unchecked Sendable {
    public static let version = "0.1.0"

    private final class Supervised {
        let options: SourceOptions
        let generation: Int
        var lane: Int?
        var opening = false
        var finished = false
        /// Consecutive failures; reset once the source delivers a record, so one that opens and dies backs off too.
        var failures = 0
        var retryAt: ContinuousClock.Instant = .now
        var lastSent: ContinuousClock.Instant = .now
        var rate = RateMeter()
        /// Set by a reload that changed or removed the source: its lane is draining, and what replaces it
        /// (nil: nothing) opens only after the old lane's last record and its `source_down`.
        var retiring: (replacement: SourceOptions?, reason: String)?
        init(options: SourceOptions, generation: Int) {
            self.options = options
            self.generation = generation
        }
    }

    private enum Event {
        case openFailed(name: String, generation: Int, error: String)
        case ended(lane: Int, live: Bool)
        case failed(lane: Int, error: String)
        case removed(lane: Int)

        var lane: Int? {
            switch self {
            case .openFailed: nil
            case .ended(let lane, _), .failed(let lane, _), .removed(let lane): lane
            }
        }
    }

    private let lock = NSLock()
    private var config: DaemonConfig
    private let configPath: String
    /// The command line's settings (`run --socket`, `--precision`), applied to every configuration read from the file.
    private let overrides: @Sendable (inout DaemonConfig) -> Void
    private let model: Model
    private let server: SocketServer
    /// Records also go to the MQTT broker when the config has an `mqtt:` section.
    private let mqtt: MQTTOutput
    private let hello: HelloState
    private var pipeline: Pipeline!
    private let notifier: SystemdNotifier
    private let logger: Logger
    private var sources: [String: Supervised] = [:]
    private var events: [Event] = []
    private var generation = 0
    private var recordsSinceWatchdog = 0
    private var recordsEmitted = 0
    private var lastWatchdog = ContinuousClock.now
    private var lastRateUpdate = ContinuousClock.now
    private var stopping = false
    private let clock = ContinuousClock()

    /// Starts listening with `model` (loaded by `Preflight`); fatal problems throw with a message naming them.
    /// `config` already has `overrides` applied.
    public init(config: DaemonConfig, configPath: String, overrides: @escaping @Sendable (inout DaemonConfig) -> Void = { _ in },
                model: Model,
                notifier: SystemdNotifier, logger: Logger) throws {
        self.config = config
        self.configPath = configPath
        self.overrides = overrides
        self.notifier = notifier
        self.logger = logger
        self.model = model
        for warning in model.warnings { logger.warning("\(warning)") }
        if let warning = model.calibrationWarning { logger.warning("\(warning)") }
        logger.info("precision \(model.precision.precision.rawValue)", metadata: ["reason": "\(model.precision.reason)"])
        if !model.referenceKernels.isEmpty {
            logger.warning("\(model.referenceKernels.count) layer(s) run on oneDNN reference kernels (about 100x slower)",
                           metadata: ["layers": "\(model.referenceKernels.joined(separator: "; "))"])
        }
        // Complete before the socket accepts anyone: systemd may have queued connections already.
        hello = HelloState(model: model.path, precision: model.precision.precision.rawValue, labels: model.labelNames,
                           sources: config.sources.map(\.name))
        let options = SocketServer.Options(queueLimit: config.socket.queueLimit, mode: mode_t(config.socket.mode), group: config.socket.group,
                                           maxSubscribers: config.socket.maxSubscribers)
        let activated = SystemdSocketActivation.listenDescriptors().first
        let greeting = hello
        if let activated {
            server = try SocketServer(listeningDescriptor: activated.fd, options: options, hello: { greeting.line() })
        } else {
            server = try SocketServer(path: config.socket.path, options: options, hello: { greeting.line() })
        }
        mqtt = try MQTTOutput(config: config, labels: model.labelNames, logger: logger)
        do {
            pipeline = try Pipeline(model: model, threads: config.workerCount, thresholds: config.thresholds,
                                    onSourceEvent: { [unowned self] event in
                                        switch event {
                                        case .ended(_, let lane, let live): post(.ended(lane: lane, live: live))
                                        case .failed(_, let lane, let error): post(.failed(lane: lane, error: error.reason))
                                        case .removed(_, let lane): post(.removed(lane: lane))
                                        }
                                    },
                                    emit: { [unowned self] record in deliver(record) })
        } catch {
            mqtt.stop()
            server.close(flushTimeout: .zero)
            throw error
        }
        lock.withLock {
            for options in config.sources { addSupervised(options) }
        }
        logger.info(activated == nil ? "listening" : "listening on the socket passed by systemd",
                    metadata: ["socket": "\(activated.map { "fd \($0.fd)" } ?? config.socket.path)",
                               "workers": "\(config.workerCount)", "model": "\(model.path)"])
    }

    /// Runs until SIGTERM or SIGINT; SIGHUP reloads the configuration. Returns the exit status.
    /// `signals` must block SIGTERM, SIGINT and SIGHUP (created before this service's threads started).
    public func run(signals: BlockedSignals) -> Int32 {
        let stop = DispatchSemaphore(value: 0)
        // Reloads get their own thread, so a slow reload never delays SIGTERM; SIGHUPs during one coalesce.
        let reloadRequested = DispatchSemaphore(value: 0)
        let reloadPending = Atomic<Bool>(false)
        let reloader = Thread { [self] in
            while true {
                reloadRequested.wait()
                reloadPending.store(false, ordering: .sequentiallyConsistent)
                reload()
            }
        }
        reloader.start()
        let waiter = Thread {
            while true {
                switch signals.next() {
                case SIGHUP:
                    if !reloadPending.exchange(true, ordering: .sequentiallyConsistent) { reloadRequested.signal() }
                default:
                    stop.signal()
                    return
                }
            }
        }
        waiter.start()

        try? notifier.ready()
        let tickerDone = DispatchSemaphore(value: 0)
        let ticker = Thread { [self] in
            while !lock.withLock({ stopping }) {
                tick()
                Thread.sleep(forTimeInterval: 0.2)
            }
            tickerDone.signal()
        }
        ticker.start()
        stop.wait()
        logger.info("stopping: draining in-flight frames")
        try? notifier.stopping()
        lock.withLock { stopping = true }
        tickerDone.wait()
        pipeline.stop()
        mqtt.stop()
        server.close(flushTimeout: .milliseconds(800))
        logger.info("stopped", metadata: ["records": "\(lock.withLock { recordsEmitted })"])
        return 0
    }

    // MARK: Records

    private func deliver(_ record: DetectionRecord) {
        server.broadcast(record.jsonLine())
        mqtt.forward(record)
        lock.withLock {
            recordsSinceWatchdog += 1
            recordsEmitted += 1
            if let s = sources[record.source] {
                s.rate.count(at: clock.now)
                s.failures = 0
                s.lastSent = clock.now
            }
        }
    }

    private func post(_ event: Event) {
        lock.withLock { events.append(event) }
    }

    // MARK: Supervision

    /// Must hold `lock`.
    private func addSupervised(_ options: SourceOptions) {
        generation += 1
        sources[options.name] = Supervised(options: options, generation: generation)
    }

    private func tick() {
        let now = clock.now
        var lines: [String] = []
        var logs: [(Logger.Level, Logger.Message, Logger.Metadata)] = []
        var toOpen: [Supervised] = []
        lock.lock()
        for event in events {
            // A source a reload retired, whatever ended its lane: its last record is out, so it goes down now,
            // and only then does its replacement open (and send `source_up`).
            if let lane = event.lane, let s = sources.values.first(where: { $0.lane == lane }), let retiring = s.retiring {
                lines.append(ServiceRecord.sourceDown(source: s.options.name, reason: retiring.reason,
                                                      retryInSeconds: retiring.replacement == nil ? nil : 0))
                logs.append((.info, "source stopped", ["source": "\(s.options.name)", "reason": "\(retiring.reason)"]))
                hello.setUp(s.options.name, false)
                sources[s.options.name] = nil
                if let replacement = retiring.replacement { addSupervised(replacement) }
                continue
            }
            switch event {
            case .openFailed(let name, let generation, let error):
                guard let s = sources[name], s.generation == generation else { continue }
                s.opening = false
                lines.append(markDown(s, reason: error, now: now, logs: &logs))
            case .removed:
                continue
            case .ended(let lane, let live):
                guard let s = sources.values.first(where: { $0.lane == lane }) else { continue }
                s.lane = nil
                if live {
                    lines.append(markDown(s, reason: "end of stream", now: now, logs: &logs))
                } else {
                    s.finished = true
                    hello.setUp(s.options.name, false)
                    lines.append(ServiceRecord.sourceDown(source: s.options.name, reason: "end of file", retryInSeconds: nil))
                    logs.append((.info, "source finished", ["source": "\(s.options.name)"]))
                }
            case .failed(let lane, let error):
                guard let s = sources.values.first(where: { $0.lane == lane }) else { continue }
                s.lane = nil
                lines.append(markDown(s, reason: error, now: now, logs: &logs))
            }
        }
        events.removeAll()
        for s in sources.values where s.lane == nil && !s.opening && !s.finished && s.retiring == nil && s.retryAt <= now {
            s.opening = true
            toOpen.append(s)
        }
        if let interval = config.heartbeat {
            for s in sources.values where now - s.lastSent >= interval {
                let stats = s.lane.map { pipeline.stats(lane: $0) }
                lines.append(ServiceRecord.heartbeat(source: s.options.name, up: s.lane != nil, fps: s.rate.perSecond(at: now),
                                                     droppedTotal: stats?.dropped ?? 0))
                s.lastSent = now
            }
        }
        lock.unlock()

        for (level, message, metadata) in logs { logger.log(level: level, message, metadata: metadata) }
        for line in lines {
            server.broadcast(line)
            mqtt.forward(line: line)
        }
        for s in toOpen { open(s) }
        updateRates(now: now)
        pingWatchdog(now: now)
    }

    /// Schedules the next attempt: 1 s, 2 s, 4 s ... up to `reconnect_max_seconds` (30 s), each +-20 %. Must hold `lock`.
    private func markDown(_ s: Supervised, reason: String, now: ContinuousClock.Instant,
                          logs: inout [(Logger.Level, Logger.Message, Logger.Metadata)]) -> String {
        hello.setUp(s.options.name, false)
        s.failures += 1
        let base = min(config.reconnectMax / .seconds(1), pow(2, Double(min(s.failures, 64) - 1)))
        let delay = base * Double.random(in: 0.8...1.2)
        s.retryAt = now + .milliseconds(Int(delay * 1000))
        s.lastSent = now
        logs.append((.warning, "source down", ["source": "\(s.options.name)", "reason": "\(reason)",
                                               "retry_in_s": "\(String(format: "%.1f", delay))"]))
        return ServiceRecord.sourceDown(source: s.options.name, reason: reason, retryInSeconds: delay)
    }

    /// Opening can block for the I/O timeout, so it runs on its own thread. The source is announced
    /// (`source_up`) and its lane recorded before its first frame can be captured.
    private func open(_ s: Supervised) {
        let options = s.options, generation = s.generation
        Thread { [self] in
            do {
                try pipeline.add(options, opener: Pipeline.openDefault) { lane, _ in
                    let current = lock.withLock { () -> Bool in
                        guard let s = sources[options.name], s.generation == generation else { return false }
                        s.opening = false
                        s.lane = lane
                        s.lastSent = clock.now
                        return true
                    }
                    guard current else { return false }
                    hello.setUp(options.name, true)
                    let input = Redaction.redactingPasswords(options.input)
                    let up = ServiceRecord.sourceUp(source: options.name, input: input)
                    server.broadcast(up)
                    mqtt.forward(line: up)
                    logger.info("source up", metadata: ["source": "\(options.name)", "input": "\(input)"])
                    return true
                }
            } catch {
                let reason = (error as? CaptureError)?.reason ?? "\(error)"
                post(.openFailed(name: options.name, generation: generation, error: Redaction.redactingPasswords(reason)))
            }
        }.start()
    }

    /// STATUS= every two seconds, with each source's records per second over the last `RateMeter.window`.
    private func updateRates(now: ContinuousClock.Instant) {
        guard now - lastRateUpdate >= .seconds(2) else { return }
        lastRateUpdate = now
        let status = lock.withLock { () -> String in
            var parts: [String] = []
            for name in config.sources.map(\.name) {
                guard let s = sources[name] else { continue }
                parts.append(s.lane != nil ? "\(name) \(String(format: "%.1f", s.rate.perSecond(at: now))) fps"
                                           : (s.finished ? "\(name) finished" : "\(name) down"))
            }
            return parts.joined(separator: ", ")
        }
        try? notifier.status(status)
    }

    /// Liveness that cannot lie: ping only when frames were detected since the last ping, or when none
    /// are waiting (idle is not stalled). A wedged worker stops the pings and systemd restarts us.
    private func pingWatchdog(now: ContinuousClock.Instant) {
        guard let interval = notifier.watchdogPingInterval, now - lastWatchdog >= interval else { return }
        let lanes = lock.withLock { () -> (progressed: Bool, lanes: [Int]) in
            let progressed = recordsSinceWatchdog > 0
            recordsSinceWatchdog = 0
            return (progressed, sources.values.compactMap(\.lane))
        }
        if lanes.progressed || lanes.lanes.allSatisfy({ pipeline.stats(lane: $0).queued == 0 }) {
            lastWatchdog = now
            try? notifier.watchdog()
        }
    }

    // MARK: Reload

    private func reload() {
        try? notifier.reloading()
        server.checkSocketFile()  // a deleted socket file would leave the daemon unreachable
        var fresh: DaemonConfig
        do {
            fresh = try DaemonConfig.load(path: configPath)
            overrides(&fresh)
            // Labels in `thresholds` must be the running model's (a new model or label file waits for a restart anyway).
            let unknown = fresh.model == config.model && fresh.labels == config.labels
                ? Preflight.unknownLabels(in: fresh, origin: configPath, known: model.labelNames) : []
            if !unknown.isEmpty { throw ConfigError(unknown) }
        } catch {
            let errors = (error as? ConfigError)?.problems.map(\.description) ?? ["\(error)"]
            logger.error("reload refused, keeping the running configuration", metadata: ["errors": "\(errors.joined(separator: "; "))"])
            server.broadcast(ServiceRecord.reload(refused: errors))
            try? notifier.ready()
            return
        }
        var toRemove: [Int] = []
        let changes = lock.withLock { () -> ReloadChanges in
            let changes = config.changes(to: fresh)
            let old = Dictionary(uniqueKeysWithValues: config.sources.map { ($0.name, $0) })
            let new = Dictionary(uniqueKeysWithValues: fresh.sources.map { ($0.name, $0) })
            let reasons = Dictionary(changes.restarted.map { ($0.source, $0.reason) }, uniquingKeysWith: { first, _ in first })
            for name in Set(old.keys).union(new.keys) {
                let replacement = new[name]
                if let before = old[name], let after = replacement, !before.needsRestart(toBecome: after) { continue }
                if let s = sources[name], let lane = s.lane {
                    // Running: drain first; the replacement opens after the old lane's source_down.
                    if s.retiring == nil { toRemove.append(lane) }
                    s.retiring = (replacement, replacement == nil ? "removed from the configuration by a reload"
                                                                  : "restarting for a reload: \(reasons[name] ?? "settings changed")")
                } else {
                    sources[name] = nil
                    hello.setUp(name, false)
                    if let replacement { addSupervised(replacement) }
                }
            }
            config.sources = fresh.sources
            config.thresholds = fresh.thresholds
            config.heartbeat = fresh.heartbeat
            config.reconnectMax = fresh.reconnectMax
            // Under the lock, so the source_down/source_up this reload causes come after it.
            server.broadcast(ServiceRecord.reload(applied: changes))
            return changes
        }
        hello.setSources(fresh.sources.map(\.name))
        mqtt.apply(fresh)
        if !changes.needsRestart.isEmpty {
            logger.warning("changes that take effect on restart", metadata: ["keys": "\(changes.needsRestart.joined(separator: ", "))"])
        }
        pipeline.setThresholds(fresh.thresholds, sources: Dictionary(fresh.sources.map { ($0.name, $0.thresholds) }) { $1 })
        for lane in toRemove { pipeline.remove(lane: lane) }
        logger.info("reloaded", metadata: ["sources": "\(fresh.sources.count)",
                                           "changed": "\(changes.changed.joined(separator: ", "))",
                                           "restarted": "\(changes.restarted.map { "\($0.source) (\($0.reason))" }.joined(separator: ", "))"])
        try? notifier.ready()
    }
}

/// What a new subscriber's `hello` says; read on the socket's I/O thread, updated on reload.
private final class HelloState: @unchecked Sendable {
    private let lock = NSLock()
    private let model: String
    private let precision: String
    private let labels: [String]
    private var sources: [String]
    private var up: Set<String> = []

    init(model: String, precision: String, labels: [String], sources: [String]) {
        self.model = model
        self.precision = precision
        self.labels = labels
        self.sources = sources
    }

    func setSources(_ names: [String]) {
        lock.withLock {
            sources = names
            up.formIntersection(names)
        }
    }

    func setUp(_ name: String, _ isUp: Bool) {
        lock.withLock {
            if isUp { up.insert(name) } else { up.remove(name) }
        }
    }

    func line() -> String {
        let current: (sources: [String], up: Set<String>) = lock.withLock { (sources, up) }
        return ServiceRecord.hello(version: Service.version, model: model, precision: precision, labels: labels,
                                   sources: current.sources, up: current.up)
    }
}
