import Capture
import Detector
import Foundation
import FrameRing
import Logging
import Sink

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
        var failures = 0
        var retryAt: ContinuousClock.Instant = .now
        var lastSent: ContinuousClock.Instant = .now
        var records = 0
        var fps = 0.0
        init(options: SourceOptions, generation: Int) {
            self.options = options
            self.generation = generation
        }
    }

    private enum Event {
        case opened(name: String, generation: Int, lane: Int)
        case openFailed(name: String, generation: Int, error: String)
        case ended(lane: Int)
        case failed(lane: Int, error: String)
    }

    private let lock = NSLock()
    private var config: DaemonConfig
    private let configPath: String
    private let model: Model
    private let server: SocketServer
    private var pipeline: Pipeline!
    private let notifier: SystemdNotifier
    private let logger: Logger
    private var sources: [String: Supervised] = [:]
    private var events: [Event] = []
    private var generation = 0
    private var recordsSinceWatchdog = 0
    private var recordsEmitted = 0
    private var lastWatchdog = ContinuousClock.now
    private var stopping = false
    private let clock = ContinuousClock()

    /// Loads the model and starts listening; fatal problems throw with a message naming them.
    public init(config: DaemonConfig, configPath: String, defaultModel: String, notifier: SystemdNotifier, logger: Logger) throws {
        self.config = config
        self.configPath = configPath
        self.notifier = notifier
        self.logger = logger
        model = try Model(path: config.model ?? defaultModel, labelsPath: config.labels)
        if !model.referenceKernels.isEmpty {
            logger.warning("\(model.referenceKernels.count) layer(s) run on oneDNN reference kernels (about 100x slower)",
                           metadata: ["layers": "\(model.referenceKernels.joined(separator: "; "))"])
        }
        let helloState = HelloState()
        let options = SocketServer.Options(queueLimit: config.socket.queueLimit, mode: mode_t(config.socket.mode), group: config.socket.group)
        if let activated = SystemdSocketActivation.listenDescriptors().first {
            server = try SocketServer(listeningDescriptor: activated.fd, options: options, hello: helloState.line)
            logger.info("using the socket passed by systemd", metadata: ["fd": "\(activated.fd)"])
        } else {
            server = try SocketServer(path: config.socket.path, options: options, hello: helloState.line)
        }
        let labels = (1...max(model.classCount, 1)).map { model.labels.name(for: $0) }
        helloState.make = { [unowned self] in
            ServiceRecord.hello(version: Self.version, model: model.path, labels: labels, sources: self.sourceNames)
        }
        pipeline = try Pipeline(model: model, threads: config.workerCount, thresholds: config.thresholds,
                                onSourceEvent: { [unowned self] event in
                                    switch event {
                                    case .ended(_, let lane): post(.ended(lane: lane))
                                    case .failed(_, let lane, let error): post(.failed(lane: lane, error: error.reason))
                                    }
                                },
                                emit: { [unowned self] record in deliver(record) })
        lock.withLock {
            for options in config.sources { addSupervised(options) }
        }
        logger.info("listening", metadata: ["socket": "\(config.socket.path)", "workers": "\(config.workerCount)",
                                           "model": "\(model.path)"])
    }

    private var sourceNames: [String] { lock.withLock { config.sources.map(\.name) } }

    /// Runs until SIGTERM or SIGINT; SIGHUP reloads the configuration. Returns the exit status.
    public func run() -> Int32 {
        for signal in [SIGTERM, SIGINT, SIGHUP] { Foundation.signal(signal, SIG_IGN) }
        let signals = DispatchQueue(label: "sightline.signals")
        let stop = DispatchSemaphore(value: 0)
        var handlers: [DispatchSourceSignal] = []
        for signal in [SIGTERM, SIGINT] {
            let source = DispatchSource.makeSignalSource(signal: signal, queue: signals)
            source.setEventHandler { stop.signal() }
            source.resume()
            handlers.append(source)
        }
        let hup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: signals)
        hup.setEventHandler { [unowned self] in reload() }
        hup.resume()
        handlers.append(hup)

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
        server.close(flushTimeout: .milliseconds(800))
        handlers.forEach { $0.cancel() }
        logger.info("stopped", metadata: ["records": "\(lock.withLock { recordsEmitted })"])
        return 0
    }

    // MARK: Records

    private func deliver(_ record: DetectionRecord) {
        server.broadcast(record.jsonLine())
        lock.withLock {
            recordsSinceWatchdog += 1
            recordsEmitted += 1
            if let s = sources[record.source] {
                s.records += 1
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
        var toOpen: [Supervised] = []
        var toRemove: [Int] = []
        lock.lock()
        for event in events {
            switch event {
            case .opened(let name, let generation, let lane):
                guard let s = sources[name], s.generation == generation else {
                    toRemove.append(lane)
                    continue
                }
                s.opening = false
                s.lane = lane
                s.failures = 0
                s.lastSent = now
                lines.append(ServiceRecord.sourceUp(source: name, input: s.options.input))
                logger.info("source up", metadata: ["source": "\(name)", "input": "\(s.options.input)"])
            case .openFailed(let name, let generation, let error):
                guard let s = sources[name], s.generation == generation else { continue }
                s.opening = false
                lines.append(markDown(s, reason: error, now: now))
            case .ended(let lane):
                guard let s = sources.values.first(where: { $0.lane == lane }) else { continue }
                s.lane = nil
                if s.options.realtime || isLiveInput(s.options.input) {
                    lines.append(markDown(s, reason: "end of stream", now: now))
                } else {
                    s.finished = true
                    lines.append(ServiceRecord.sourceDown(source: s.options.name, reason: "end of file", retryInSeconds: nil))
                    logger.info("source finished", metadata: ["source": "\(s.options.name)"])
                }
            case .failed(let lane, let error):
                guard let s = sources.values.first(where: { $0.lane == lane }) else { continue }
                s.lane = nil
                lines.append(markDown(s, reason: error, now: now))
            }
        }
        events.removeAll()
        for s in sources.values where s.lane == nil && !s.opening && !s.finished && s.retryAt <= now {
            s.opening = true
            toOpen.append(s)
        }
        if let interval = config.heartbeat {
            for s in sources.values where now - s.lastSent >= interval {
                let stats = s.lane.map { pipeline.stats(lane: $0) }
                lines.append(ServiceRecord.heartbeat(source: s.options.name, up: s.lane != nil, fps: s.fps, droppedTotal: stats?.dropped ?? 0))
                s.lastSent = now
            }
        }
        lock.unlock()

        for line in lines { server.broadcast(line) }
        for lane in toRemove { pipeline.remove(lane: lane) }
        for s in toOpen { open(s) }
        updateRates(now: now)
        pingWatchdog(now: now)
    }

    /// Liveness that cannot lie: ping only when frames were detected since the last ping, or when none
    /// are waiting (idle is not stalled). A wedged worker stops the pings and systemd restarts us.
    private func pingWatchdog(now: ContinuousClock.Instant) {
        guard let interval = notifier.watchdogPingInterval, now - lastWatchdog >= interval else { return }
        let healthy = lock.withLock { () -> Bool in
            let progressed = recordsSinceWatchdog > 0
            recordsSinceWatchdog = 0
            return progressed || sources.values.allSatisfy { s in s.lane.map { pipeline.stats(lane: $0).queued == 0 } ?? true }
        }
        if healthy {
            lastWatchdog = now
            try? notifier.watchdog()
        }
    }

    /// Schedules the next attempt: 1 s, 2 s, 4 s ... up to 30 s, each +-20 %. Must hold `lock`.
    private func markDown(_ s: Supervised, reason: String, now: ContinuousClock.Instant) -> String {
        s.failures += 1
        let base = min(30, pow(2, Double(s.failures - 1)))
        let delay = base * Double.random(in: 0.8...1.2)
        s.retryAt = now + .milliseconds(Int(delay * 1000))
        s.lastSent = now
        logger.warning("source down", metadata: ["source": "\(s.options.name)", "reason": "\(reason)",
                                                 "retry_in_s": "\(String(format: "%.1f", delay))"])
        return ServiceRecord.sourceDown(source: s.options.name, reason: reason, retryInSeconds: delay)
    }

    /// Opening can block for the I/O timeout; it runs on its own thread.
    private func open(_ s: Supervised) {
        let options = s.options, generation = s.generation
        Thread { [self] in
            do {
                let lane = try pipeline.add(options, opener: Service.opener)
                post(.opened(name: options.name, generation: generation, lane: lane))
            } catch {
                post(.openFailed(name: options.name, generation: generation, error: (error as? CaptureError)?.reason ?? "\(error)"))
            }
        }.start()
    }

    private var lastRateUpdate = ContinuousClock.now

    private func updateRates(now: ContinuousClock.Instant) {
        let elapsed = now - lastRateUpdate
        guard elapsed >= .seconds(2) else { return }
        lastRateUpdate = now
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let status = lock.withLock { () -> String in
            var parts: [String] = []
            for name in config.sources.map(\.name) {
                guard let s = sources[name] else { continue }
                s.fps = Double(s.records) / seconds
                s.records = 0
                parts.append(s.lane != nil ? "\(name) \(String(format: "%.1f", s.fps)) fps"
                                           : (s.finished ? "\(name) finished" : "\(name) down"))
            }
            return parts.joined(separator: ", ")
        }
        try? notifier.status(status)
    }

    // MARK: Reload

    private func reload() {
        try? notifier.reloading()
        let fresh: DaemonConfig
        do {
            fresh = try DaemonConfig.load(path: configPath)
        } catch {
            logger.error("reload refused, keeping the running configuration", metadata: ["errors": "\(error)"])
            try? notifier.ready()
            return
        }
        var toRemove: [Int] = []
        lock.withLock {
            let old = Dictionary(uniqueKeysWithValues: config.sources.map { ($0.name, $0) })
            let new = Dictionary(uniqueKeysWithValues: fresh.sources.map { ($0.name, $0) })
            for (name, options) in old where new[name] != options {
                if let lane = sources[name]?.lane { toRemove.append(lane) }
                sources[name] = nil
            }
            for options in fresh.sources where old[options.name] != options { addSupervised(options) }
            if fresh.model != config.model || fresh.labels != config.labels || fresh.workers != config.workers || fresh.socket != config.socket {
                logger.warning("model, labels, workers and socket changes take effect on restart")
            }
            config.sources = fresh.sources
            config.thresholds = fresh.thresholds
            config.heartbeat = fresh.heartbeat
        }
        pipeline.currentThresholds = fresh.thresholds
        for lane in toRemove { pipeline.remove(lane: lane) }
        logger.info("reloaded", metadata: ["sources": "\(fresh.sources.count)", "restarted": "\(toRemove.count)"])
        try? notifier.ready()
    }

    // MARK: Sources

    static let opener: Pipeline.SourceOpener = { options in
        try Pipeline.openDefault(options)
    }

    private func isLiveInput(_ input: String) -> Bool {
        input.contains("://") || input.hasPrefix("/dev/")
    }
}

/// The hello line, built on demand for each new subscriber.
private final class HelloState: @unchecked Sendable {
    var make: (() -> String)?
    func line() -> String { make?() ?? "" }
}
