import Capture
import Detector
import Foundation
import HTTP
import Logging
import Sink
import Synchronization
import Tracking
import Values

/// The running daemon: the model, the socket, the pipeline, and the shell around `SourceSupervisor`, which decides
/// what happens to the sources; this class feeds it events (a tick, a source opened or not, a lane's end, a record,
/// a reload) and performs the actions it answers with. A supervision thread waits for whatever is due next (a retry,
/// a heartbeat, STATUS=, a watchdog ping) or for an event, so an idle daemon sleeps.
public final class Service: Sendable {
    public static let version = "0.1.0"

    private let configPath: String
    /// The command line's settings (`run --socket`, `--precision`), applied to every configuration read from the file.
    private let overrides: @Sendable (inout DaemonConfig) -> Void
    private let model: Model
    /// The model used when the config names none, for a reload to check as `run` would load it.
    private let defaultModel: String
    /// Which of the sockets systemd passed (their configured addresses are then unused).
    private let passedSockets: (subscribers: Bool, http: Bool)
    private let server: SocketServer
    private let hello: HelloState
    private let outlet: Outlet
    /// Records also go to the MQTT broker when the config has an `mqtt:` section.
    private let mqtt: MQTTOutput
    private let supervision: Supervision
    private let pipeline: Pipeline
    private let http: HTTPServer?
    private let notifier: SystemdNotifier
    private let logger: Logger
    private let clock = ContinuousClock()

    /// Starts listening with `model` (loaded by `Preflight`); fatal problems throw with a message naming them.
    /// `config` already has `overrides` applied.
    public init(config: DaemonConfig, configPath: String, overrides: @escaping @Sendable (inout DaemonConfig) -> Void = { _ in },
                model: Model, defaultModel: String,
                notifier: SystemdNotifier, logger: Logger) throws {
        self.configPath = configPath
        self.overrides = overrides
        self.notifier = notifier
        self.logger = logger
        self.model = model
        self.defaultModel = defaultModel
        let passed = SystemdSocketActivation.passed()
        passedSockets = (passed.subscribers != nil, passed.http != nil)
        for extra in passed.unknown {
            logger.warning("closing a socket systemd passed that is not for sightline (FileDescriptorName= must be subscribers or http)",
                           metadata: ["fd": "\(extra.fd)", "name": "\(extra.name ?? "")"])
            close(extra.fd)
        }
        // A passed HTTP socket turns HTTP on, with the `http:` section's settings or the defaults.
        let httpOptions = config.http ?? passed.http.map { _ in HTTPOptions() }
        // Before anything uses Swift concurrency: HTTP's tasks then run on SwiftNIO's threads.
        if httpOptions != nil { HTTPServer.adoptEventLoopsAsGlobalExecutor() }
        for warning in model.warnings { logger.warning("\(warning)") }
        if let warning = model.calibrationWarning { logger.warning("\(warning)") }
        logger.info("precision \(model.precision.precision.rawValue)", metadata: ["reason": "\(model.precision.reason)"])
        if !model.referenceKernels.isEmpty {
            logger.warning("\(model.referenceKernels.count) layer(s) run on oneDNN reference kernels (about 100x slower)",
                           metadata: ["layers": "\(model.referenceKernels.joined(separator: "; "))"])
        }
        // Complete before the socket accepts anyone: systemd may have queued connections already.
        let hello = HelloState(model: model.path, precision: model.precision.precision.rawValue, labels: model.labelNames,
                               sources: config.sources.map(\.name))
        self.hello = hello
        let options = SocketServer.Options(queueLimit: config.socket.queueLimit, stuckAfter: config.socket.stuckAfter,
                                           mode: mode_t(config.socket.mode), group: config.socket.group,
                                           maxSubscribers: config.socket.maxSubscribers)
        let activated = passed.subscribers
        if let activated {
            server = try SocketServer(listeningDescriptor: activated.fd, options: options, hello: { hello.line() })
        } else {
            server = try SocketServer(path: config.socket.path, options: options, hello: { hello.line() })
        }
        // What the pipeline's callbacks reach exists before the pipeline does.
        let mqtt = try MQTTOutput(config: config, labels: model.labelNames, logger: logger)
        let http = httpOptions.map { HTTPServer(options: $0, logger: logger) }
        let outlet = Outlet(server: server, tracking: TrackingStage(defaults: nil, sources: config.trackingBySource), mqtt: mqtt, http: http)
        self.mqtt = mqtt
        let supervision = Supervision(config: config, now: clock.now)
        self.outlet = outlet
        self.supervision = supervision
        self.http = http
        var frameTap: Pipeline.FrameTap?
        if let http { frameTap = { frame, detections in http.tap(frame, detections: detections) } }
        do {
            pipeline = try Pipeline(model: model, threads: config.workerCount, thresholds: config.detectorThresholds,
                                    sourceThresholds: Dictionary(config.sources.map { ($0.name, $0.thresholds) }) { $1 },
                                    onSourceEvent: { event in
                                        switch event {
                                        case .ended(let name, let lane, let live):
                                            supervision.post(.laneEnded(source: name, lane: lane, how: .ended(live: live)))
                                        case .failed(let name, let lane, let error):
                                            supervision.post(.laneEnded(source: name, lane: lane, how: .failed(reason: error.reason)))
                                        case .removed(let name, let lane):
                                            supervision.post(.laneEnded(source: name, lane: lane, how: .removed))
                                        }
                                    },
                                    frameTap: frameTap,
                                    emit: { record in
                                        outlet.publish(.detections(record))
                                        supervision.delivered(source: record.source)
                                    })
        } catch {
            mqtt.stop()
            http?.stop()
            server.close(flushTimeout: .zero)
            throw error
        }
        if let http {
            do {
                try http.start(daemon: .init(sources: { [supervision, pipeline = self.pipeline] in Self.sourceStatuses(supervision, pipeline) },
                                             subscribers: { [server = self.server] in .init(connected: server.subscriberCount,
                                                                              disconnectedStuck: server.disconnectedStuck,
                                                                              refusedOverLimit: server.refusedOverLimit) }),
                               listeningDescriptor: passed.http?.fd)
            } catch {
                pipeline.stop()
                http.stop()
                mqtt.stop()
                server.close(flushTimeout: .zero)
                throw error
            }
            let address = http.listeningOn ?? "\(http.options.listen)"
            logger.info(passed.http == nil ? "HTTP listening" : "HTTP listening on the socket passed by systemd", metadata: ["address": "\(address)"])
            // As for the subscriber socket, the passed socket wins over the config.
            if passed.http != nil, let configured = config.http?.listen, "\(configured)" != address {
                logger.warning("http.listen is not used: systemd passed the HTTP socket",
                               metadata: ["configured": "\(configured)", "passed": "\(address)"])
            }
        }
        let socketPath = activated.map { SystemdSocketActivation.unixPath(of: $0.fd) ?? "fd \($0.fd)" } ?? config.socket.path
        logger.info(activated == nil ? "listening" : "listening on the socket passed by systemd",
                    metadata: ["socket": "\(socketPath)", "workers": "\(config.workerCount)", "model": "\(model.path)"])
        if activated != nil, socketPath != config.socket.path {
            logger.warning("socket.path is not used: systemd passed the subscriber socket",
                           metadata: ["configured": "\(config.socket.path)", "passed": "\(socketPath)"])
        }
    }

    /// Runs until SIGTERM or SIGINT; SIGHUP reloads the configuration. Returns the exit status.
    /// `signals` must block SIGTERM, SIGINT and SIGHUP (created before this service's threads started).
    public func run(signals: BlockedSignals) -> Int32 {
        let stop = DispatchSemaphore(value: 0)
        // Reloads get their own thread, so a slow reload never delays SIGTERM; SIGHUPs during one coalesce.
        let reloadRequested = DispatchSemaphore(value: 0)
        let reloadPending = Atomic<Bool>(false)
        let reloader = Thread(named: "sl-reload") { [self] in
            while true {
                reloadRequested.wait()
                reloadPending.store(false, ordering: .sequentiallyConsistent)
                reload()
            }
        }
        reloader.start()
        let waiter = Thread(named: "sl-signals") {
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
        let supervised = DispatchSemaphore(value: 0)
        Thread(named: "sl-supervise") { [self] in
            supervise()
            supervised.signal()
        }.start()
        stop.wait()
        logger.info("stopping: draining in-flight frames")
        try? notifier.stopping()
        handle([.shutdown])
        supervision.wake()
        supervised.wait()
        pipeline.stop()
        outlet.shutdown()
        mqtt.stop()
        http?.stop()
        server.close(flushTimeout: .milliseconds(800))
        logger.info("stopped", metadata: ["records": "\(supervision.state.withLock { $0.recordsEmitted })"])
        return 0
    }

    // MARK: Supervision

    /// The supervision thread: lane endings and failed opens, retries and heartbeats, STATUS= and the watchdog, each
    /// when due; between them it sleeps until the next is due or an event arrives.
    private func supervise() {
        let statusInterval = Duration.seconds(2)
        var statusDue = clock.now + statusInterval
        var watchdogDue = notifier.watchdogPingInterval.map { clock.now + $0 }
        while true {
            handle(supervision.takeEvents() + [.tick])
            let now = clock.now
            if notifier.isEnabled, now >= statusDue {
                statusDue = now + statusInterval
                let status = supervision.state.withLock { $0.supervisor.status(now: now) }
                try? notifier.status(status)
            }
            if let interval = notifier.watchdogPingInterval, let due = watchdogDue, now >= due {
                // Not pinged while stalled: look again shortly, so pings resume as soon as frames move.
                watchdogDue = now + (pingWatchdog() ? interval : .milliseconds(200))
            }
            let (stopped, next) = supervision.state.withLock { ($0.supervisor.stopped, $0.supervisor.nextDeadline()) }
            if stopped { return }
            var deadline = next ?? now + .seconds(3600)
            if notifier.isEnabled { deadline = min(deadline, statusDue) }
            if let watchdogDue { deadline = min(deadline, watchdogDue) }
            supervision.wait(until: deadline)
        }
    }

    /// Feeds `events` to the supervisor and performs what it answers. The records it announces go out under the
    /// lock, so subscribers get them in the order the supervisor decided them; the rest is done after.
    @discardableResult
    private func handle(_ events: [SourceSupervisor.Event]) -> [SourceSupervisor.Action] {
        let now = clock.now
        let actions = supervision.state.withLock { state in
            let actions = events.flatMap { state.supervisor.handle($0, now: now) }
            for action in actions { announce(action) }
            return actions
        }
        for action in actions { perform(action) }
        return actions
    }

    /// The part of an action that sends a record. Called under the supervision lock.
    private func announce(_ action: SourceSupervisor.Action) {
        switch action {
        case .announceUp(let source, let input):
            hello.setUp(source, true)
            http?.sourceWentUp(source)
            outlet.publish(.sourceUp(.init(source: source, input: Redaction.redactingPasswords(input))))
        case .announceDown(let source, let down):
            hello.setUp(source, false)
            let (sourceDown, tracksEnd): (Record.SourceDown, TrackEndReason) = switch down {
            case .failed(let reason, let retryIn):
                (.init(source: source, reason: reason, retryInSeconds: retryIn), .sourceDown)
            case .finished:
                (.init(source: source, reason: "end of file", retryInSeconds: nil), .endOfFile)
            case .stopped(let reason, let replaced):
                (.init(source: source, reason: reason, retryInSeconds: replaced ? 0 : nil), .reload)
            }
            outlet.publish(.sourceDown(sourceDown), endingTracks: tracksEnd)
            switch down {
            case .failed(let reason, _), .stopped(let reason, _): http?.sourceWentDown(source, reason: reason)
            case .finished: http?.sourceWentDown(source, reason: "end of file")
            }
        case .heartbeat(let source, let lane, let fps):
            let dropped = lane.flatMap { pipeline.stats(lane: $0)?.dropped } ?? 0
            outlet.publish(.heartbeat(.init(source: source, up: lane != nil, fps: fps, droppedTotal: dropped)))
        case .open, .decline, .removeLane:
            break
        }
    }

    /// The rest of an action, outside the lock.
    private func perform(_ action: SourceSupervisor.Action) {
        switch action {
        case .open(let options, let attempt):
            open(options, attempt: attempt)
        case .removeLane(let lane):
            pipeline.remove(lane: lane)  // waits for the lane's capture thread
        case .announceUp(let source, let input):
            logger.info("source up", metadata: ["source": "\(source)", "input": "\(Redaction.redactingPasswords(input))"])
        case .announceDown(let source, .failed(let reason, let retryIn)):
            logger.warning("source down", metadata: ["source": "\(source)", "reason": "\(reason)",
                                                     "retry_in_s": "\(String(format: "%.1f", retryIn))"])
        case .announceDown(let source, .finished):
            logger.info("source finished", metadata: ["source": "\(source)"])
        case .announceDown(let source, .stopped(let reason, _)):
            logger.info("source stopped", metadata: ["source": "\(source)", "reason": "\(reason)"])
        case .decline, .heartbeat:
            break
        }
    }

    /// Opening can block for the I/O timeout, so it runs on its own thread. The source is announced
    /// (`source_up`) and its lane known to the supervisor before its first frame can be captured.
    private func open(_ options: SourceOptions, attempt: Int) {
        Thread(named: "sl-open") { [self] in
            do {
                try pipeline.add(options, opener: Pipeline.openDefault) { lane, _ in
                    !handle([.opened(source: options.name, attempt: attempt, lane: lane)]).contains(.decline(lane: lane))
                }
            } catch {
                let reason = (error as? CaptureError)?.reason ?? "\(error)"
                supervision.post(.openFailed(source: options.name, attempt: attempt, reason: Redaction.redactingPasswords(reason)))
            }
        }.start()
    }

    /// Each configured source as the HTTP server shows it.
    private static func sourceStatuses(_ supervision: Supervision, _ pipeline: Pipeline) -> [SourceStatus] {
        let now = ContinuousClock.now
        return supervision.state.withLock { state in
            state.supervisor.configured.compactMap { options in
                guard var source = state.supervisor.sources[options.name] else { return nil }
                let shown: SourceStatus.State = switch source.state {
                case .waiting, .opening: .opening
                case .up, .retiring: .up
                case .down: .down
                case .finished: .finished
                }
                return SourceStatus(name: options.name, state: shown, fps: source.rate.perSecond(at: now),
                                    droppedTotal: source.state.lane.flatMap { pipeline.stats(lane: $0)?.dropped } ?? 0)
            }
        }
    }

    /// Liveness that cannot lie: ping only when frames were detected since the last ping, or when none
    /// are waiting (idle is not stalled). A wedged worker stops the pings and systemd restarts us.
    private func pingWatchdog() -> Bool {
        let (progressed, lanes) = supervision.state.withLock { state in
            defer { state.recordsSinceWatchdog = 0 }
            return (state.recordsSinceWatchdog > 0, state.supervisor.lanes)
        }
        guard progressed || lanes.allSatisfy({ (pipeline.stats(lane: $0)?.queued ?? 0) == 0 }) else { return false }
        try? notifier.watchdog()
        return true
    }

    // MARK: Reload

    private func reload() {
        try? notifier.reloading()
        server.checkSocketFile()  // a deleted socket file would leave the daemon unreachable
        let config = supervision.state.withLock { $0.config }
        var fresh: DaemonConfig
        do {
            fresh = try DaemonConfig.load(path: configPath)
            overrides(&fresh)
            // `check`'s checks: what waits for a restart (a new model, label file or socket) must start then, so a
            // reload never leaves a daemon that cannot restart; labels in `thresholds` must be the model's. The
            // running model stands for the same model, labels and precision, rather than loading it all again.
            let sameModel = fresh.model == config.model && fresh.labels == config.labels && fresh.precision == config.precision
            let preflight = Preflight(fresh, origin: configPath, defaultModel: defaultModel,
                                      checkSocket: !passedSockets.subscribers, checkHTTPSocket: !passedSockets.http,
                                      running: sameModel ? model : nil)
            if !preflight.problems.isEmpty { throw ConfigError(preflight.problems) }
        } catch {
            let errors = (error as? ConfigError)?.problems.map(\.description) ?? ["\(error)"]
            logger.error("reload refused, keeping the running configuration", metadata: ["errors": "\(errors.joined(separator: "; "))"])
            outlet.publish(.reload(.init(.refused(errors: errors))))
            try? notifier.ready()
            return
        }
        let now = clock.now
        let (changes, actions) = supervision.state.withLock { state in
            let changes = state.config.changes(to: fresh)
            state.config.sources = fresh.sources
            state.config.thresholds = fresh.thresholds
            state.config.tracking = fresh.tracking
            state.config.heartbeat = fresh.heartbeat
            state.config.reconnectMax = fresh.reconnectMax
            // Under the lock, so the source_down/source_up this reload causes come after it.
            outlet.publish(.reload(.init(.applied(changes))))
            let settings = SourceSupervisor.Settings(heartbeat: fresh.heartbeat, reconnectMax: fresh.reconnectMax)
            return (changes, state.supervisor.handle(.reload(sources: fresh.sources, settings: settings), now: now))
        }
        hello.setSources(fresh.sources.map(\.name))
        mqtt.apply(fresh)
        if !changes.needsRestart.isEmpty {
            logger.warning("changes that take effect on restart", metadata: ["keys": "\(changes.needsRestart.joined(separator: ", "))"])
        }
        outlet.configureTracking(fresh)
        pipeline.setThresholds(fresh.detectorThresholds, sources: Dictionary(fresh.sources.map { ($0.name, $0.thresholds) }) { $1 })
        for action in actions { perform(action) }
        supervision.wake()  // the heartbeat interval may have changed
        // The lists the `reload` record has, in its order.
        logger.info("reloaded", metadata: ["sources": "\(fresh.sources.count)",
                                           "changed": "\(changes.changed.joined(separator: ", "))",
                                           "added": "\(changes.added.joined(separator: ", "))",
                                           "removed": "\(changes.removed.joined(separator: ", "))",
                                           "restarted": "\(changes.restarted.map { "\($0.source) (\($0.reason))" }.joined(separator: ", "))",
                                           "needs_restart": "\(changes.needsRestart.joined(separator: ", "))"])
        try? notifier.ready()
    }
}

/// The supervisor and the bookkeeping that goes with it under one lock, and the events waiting for the supervision
/// thread. It exists before the pipeline, whose callbacks post lane endings here and count records.
private final class Supervision: Sendable {
    struct State {
        var supervisor: SourceSupervisor
        /// The running configuration, for the next reload to compare with.
        var config: DaemonConfig
        var recordsSinceWatchdog = 0
        var recordsEmitted = 0
    }

    let state: Mutex<State>
    private let inbox = Mutex<[SourceSupervisor.Event]>([])
    /// Signalled for every event posted, so the supervision thread handles it at once.
    private let wakeup = DispatchSemaphore(value: 0)

    init(config: DaemonConfig, now: ContinuousClock.Instant) {
        let settings = SourceSupervisor.Settings(heartbeat: config.heartbeat, reconnectMax: config.reconnectMax)
        state = Mutex(State(supervisor: SourceSupervisor(sources: config.sources, settings: settings, now: now), config: config))
    }

    /// From any thread; the supervision thread handles it.
    func post(_ event: SourceSupervisor.Event) {
        inbox.withLock { $0.append(event) }
        wakeup.signal()
    }

    func takeEvents() -> [SourceSupervisor.Event] {
        inbox.withLock { events in
            defer { events.removeAll() }
            return events
        }
    }

    /// A record of `source` went out (called by the ordered sink, under its lock).
    func delivered(source: String) {
        let now = ContinuousClock.now
        state.withLock { state in
            state.recordsSinceWatchdog += 1
            state.recordsEmitted += 1
            _ = state.supervisor.handle(.delivered(source: source), now: now)
        }
    }

    /// Sleeps until `deadline`, or less if an event is posted or `wake()` called.
    func wait(until deadline: ContinuousClock.Instant) {
        let nanoseconds = max(0, (deadline - .now) / .nanoseconds(1))
        _ = wakeup.wait(timeout: .now() + .nanoseconds(Int(min(nanoseconds, 3.6e12))))
    }

    func wake() { wakeup.signal() }
}

/// What a new subscriber's `hello` says; read on the socket's I/O thread, updated as sources go up and down.
private final class HelloState: Sendable {
    private let model: String
    private let precision: String
    private let labels: [String]
    private let current: Mutex<(sources: [String], up: Set<String>)>

    init(model: String, precision: String, labels: [String], sources: [String]) {
        self.model = model
        self.precision = precision
        self.labels = labels
        current = Mutex((sources, []))
    }

    func setSources(_ names: [String]) {
        current.withLock {
            $0.sources = names
            $0.up.formIntersection(names)
        }
    }

    func setUp(_ name: String, _ isUp: Bool) {
        current.withLock {
            if isUp { $0.up.insert(name) } else { $0.up.remove(name) }
        }
    }

    func line() -> String {
        let current = current.withLock { $0 }
        return Record.hello(.init(version: Service.version, model: model, precision: precision, labels: labels,
                                  sources: current.sources, up: current.up)).jsonLine()
    }
}
