import Values

/// The daemon's source supervision as plain state: which sources to open, when to retry one that went down,
/// when each is due a heartbeat, and how a reload restarts or removes them. It touches nothing itself: `Service`
/// feeds it events with the time they happened and performs the actions it returns, so every rule here is
/// testable without processes, threads or sleeps.
struct SourceSupervisor {
    struct Settings: Equatable, Sendable {
        /// nil: no heartbeats.
        var heartbeat: Duration?
        /// The longest wait before reopening a source that went down.
        var reconnectMax: Duration
    }

    enum State: Equatable, Sendable {
        /// Configured and not opened yet: the next tick opens it.
        case waiting
        /// `open` was asked for as `attempt`; `opened` or `openFailed` with that attempt follows.
        case opening(attempt: Int)
        /// Delivering through `lane`.
        case up(lane: Int)
        /// Ended or failed; reopens at `retryAt`.
        case down(retryAt: ContinuousClock.Instant)
        /// A file that reached its end: not reopened unless a reload changes it.
        case finished
        /// A reload changed or removed it: `lane` drains, then its `source_down`, and only then does
        /// `replacement` (nil: nothing) open and send `source_up`.
        case retiring(lane: Int, replacement: SourceOptions?, reason: String)

        var lane: Int? {
            switch self {
            case .up(let lane), .retiring(let lane, _, _): lane
            case .waiting, .opening, .down, .finished: nil
            }
        }
    }

    enum Event: Sendable {
        case tick
        /// The `attempt`-th open succeeded as `lane`; its capture starts only if the answer holds no `decline`.
        case opened(source: String, attempt: Int, lane: Int)
        case openFailed(source: String, attempt: Int, reason: String)
        /// The lane's last record is out (the pipeline says so only then).
        case laneEnded(source: String, lane: Int, how: LaneEnding)
        /// A record of `source` went out.
        case delivered(source: String)
        /// A reload's new sources, in configuration order, and settings.
        case reload(sources: [SourceOptions], settings: Settings)
        /// The daemon is stopping: nothing opens or is announced any more.
        case shutdown
    }

    enum LaneEnding: Equatable, Sendable {
        /// The end of a file (`live` false) or of a live stream.
        case ended(live: Bool)
        case failed(reason: String)
        /// By `removeLane`.
        case removed
    }

    enum Action: Equatable, Sendable {
        case open(SourceOptions, attempt: Int)
        /// An `opened` that came too late (the source was reloaded or removed meanwhile, or the daemon is stopping):
        /// close it unused.
        case decline(lane: Int)
        /// `source_up`, before the lane's first frame is captured.
        case announceUp(source: String, input: String)
        case announceDown(source: String, Down)
        /// `lane` nil: the source is down.
        case heartbeat(source: String, lane: Int?, fps: Double)
        /// Stop the lane's source; `laneEnded(.removed)` follows its last record.
        case removeLane(Int)
    }

    enum Down: Equatable, Sendable {
        /// Ended or failed (or did not open): reopens in `retryIn` seconds.
        case failed(reason: String, retryIn: Double)
        /// A file that reached its end.
        case finished
        /// Retired by a reload: its replacement opens now (`replaced`), or it was removed.
        case stopped(reason: String, replaced: Bool)
    }

    struct Source: Sendable {
        var options: SourceOptions
        var state: State
        /// Consecutive failures; reset once the source delivers a record, so one that opens and dies backs off too.
        var failures = 0
        /// When anything was last sent for it: a heartbeat goes out `heartbeat` after that.
        var lastSent: ContinuousClock.Instant
        var rate: RateMeter

        init(options: SourceOptions, state: State, now: ContinuousClock.Instant) {
            self.options = options
            self.state = state
            lastSent = now
            rate = RateMeter(started: now)
        }
    }

    private(set) var sources: [String: Source] = [:]
    /// The configured sources in configuration order (a removed source may still be retiring in `sources`).
    private(set) var configured: [SourceOptions]
    private(set) var settings: Settings
    private(set) var stopped = false
    private var attempts = 0
    private var random: any RandomNumberGenerator & Sendable

    init(sources: [SourceOptions], settings: Settings, now: ContinuousClock.Instant,
         random: any RandomNumberGenerator & Sendable = SystemRandomNumberGenerator()) {
        configured = sources
        self.settings = settings
        self.random = random
        for options in sources where self.sources[options.name] == nil {
            self.sources[options.name] = Source(options: options, state: .waiting, now: now)
        }
    }

    mutating func handle(_ event: Event, now: ContinuousClock.Instant) -> [Action] {
        guard !stopped else {
            if case .opened(_, _, let lane) = event { return [.decline(lane: lane)] }
            return []
        }
        switch event {
        case .tick:
            return tick(now: now)
        case .opened(let name, let attempt, let lane):
            guard var source = sources[name], source.state == .opening(attempt: attempt) else { return [.decline(lane: lane)] }
            source.state = .up(lane: lane)
            source.lastSent = now
            sources[name] = source
            return [.announceUp(source: name, input: source.options.input)]
        case .openFailed(let name, let attempt, let reason):
            guard var source = sources[name], source.state == .opening(attempt: attempt) else { return [] }
            let down = goDown(&source, reason: reason, now: now)
            sources[name] = source
            return [down]
        case .laneEnded(let name, let lane, let how):
            return laneEnded(name, lane: lane, how: how, now: now)
        case .delivered(let name):
            sources[name]?.failures = 0
            sources[name]?.lastSent = now
            sources[name]?.rate.count(at: now)
            return []
        case .reload(let fresh, let settings):
            return reload(to: fresh, settings: settings, now: now)
        case .shutdown:
            stopped = true
            return []
        }
    }

    /// When the next tick has something to do (a retry or a heartbeat), or nil if only an event can change anything.
    func nextDeadline() -> ContinuousClock.Instant? {
        guard !stopped else { return nil }
        var next: ContinuousClock.Instant? = nil
        func consider(_ instant: ContinuousClock.Instant) { next = min(next ?? instant, instant) }
        for source in sources.values {
            switch source.state {
            case .waiting: consider(source.lastSent)
            case .down(let retryAt): consider(retryAt)
            case .opening, .up, .finished, .retiring: break
            }
            if let interval = settings.heartbeat { consider(source.lastSent + interval) }
        }
        return next
    }

    /// The lanes delivering now.
    var lanes: [Int] { sources.values.compactMap(\.state.lane) }

    /// systemd's STATUS=: each configured source's records per second, or that it is down or finished.
    mutating func status(now: ContinuousClock.Instant) -> String {
        var parts: [String] = []
        for name in configured.map(\.name) {
            guard var source = sources[name] else { continue }
            if source.state.lane != nil {
                let fps = source.rate.perSecond(at: now)
                sources[name] = source
                parts.append("\(name) \((fps * 10).rounded() / 10) fps")
            } else {
                parts.append(source.state == .finished ? "\(name) finished" : "\(name) down")
            }
        }
        return parts.joined(separator: ", ")
    }

    /// The wait in seconds before reopening a source that failed `failures` times in a row (`Backoff`, up to
    /// `reconnectMax`).
    mutating func backoff(failures: Int) -> Double {
        Backoff.seconds(failures: failures, ceiling: settings.reconnectMax / .seconds(1), random: &random)
    }

    // MARK: Transitions

    private mutating func tick(now: ContinuousClock.Instant) -> [Action] {
        var actions: [Action] = []
        for name in sources.keys.sorted() {
            guard var source = sources[name] else { continue }
            if let interval = settings.heartbeat, now - source.lastSent >= interval {
                actions.append(.heartbeat(source: name, lane: source.state.lane, fps: source.rate.perSecond(at: now)))
                source.lastSent = now
            }
            switch source.state {
            case .waiting: actions.append(open(&source))
            case .down(let retryAt) where retryAt <= now: actions.append(open(&source))
            case .down, .opening, .up, .finished, .retiring: break
            }
            sources[name] = source
        }
        return actions
    }

    private mutating func open(_ source: inout Source) -> Action {
        attempts += 1
        source.state = .opening(attempt: attempts)
        return .open(source.options, attempt: attempts)
    }

    /// A fresh run of `options`, opened at once, with no failures behind it.
    private mutating func start(_ options: SourceOptions, now: ContinuousClock.Instant) -> Action {
        var source = Source(options: options, state: .waiting, now: now)
        let action = open(&source)
        sources[options.name] = source
        return action
    }

    private mutating func goDown(_ source: inout Source, reason: String, now: ContinuousClock.Instant) -> Action {
        source.failures += 1
        let delay = backoff(failures: source.failures)
        source.state = .down(retryAt: now + .seconds(delay))
        source.lastSent = now
        return .announceDown(source: source.options.name, .failed(reason: reason, retryIn: delay))
    }

    private mutating func laneEnded(_ name: String, lane: Int, how: LaneEnding, now: ContinuousClock.Instant) -> [Action] {
        guard var source = sources[name], source.state.lane == lane else { return [] }
        var actions: [Action] = []
        switch (source.state, how) {
        case (.retiring(_, let replacement, let reason), _):
            // Whatever ended it, its last record is out: down now, and only then does the replacement open.
            sources[name] = nil
            actions.append(.announceDown(source: name, .stopped(reason: reason, replaced: replacement != nil)))
            if let replacement { actions.append(start(replacement, now: now)) }
            return actions
        case (_, .ended(live: true)):
            actions.append(goDown(&source, reason: "end of stream", now: now))
        case (_, .ended(live: false)):
            source.state = .finished
            source.lastSent = now
            actions.append(.announceDown(source: name, .finished))
        case (_, .failed(let reason)):
            actions.append(goDown(&source, reason: reason, now: now))
        case (_, .removed):
            break  // only a retiring lane is removed
        }
        sources[name] = source
        return actions
    }

    private mutating func reload(to fresh: [SourceOptions], settings: Settings, now: ContinuousClock.Instant) -> [Action] {
        self.settings = settings
        let old = Dictionary(configured.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let new = Dictionary(fresh.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        configured = fresh
        var actions: [Action] = []
        for name in Set(old.keys).union(new.keys).sorted() {
            let replacement = new[name]
            if let before = old[name], let after = replacement, !before.needsRestart(toBecome: after) {
                // Thresholds alone change without a restart; the next open (a retry) uses the new ones too.
                if case .retiring(let lane, _?, let reason) = sources[name]?.state {
                    sources[name]?.state = .retiring(lane: lane, replacement: after, reason: reason)
                } else {
                    sources[name]?.options = after
                }
                continue
            }
            let reason = replacement.map { after in
                "restarting for a reload: \(old[name].flatMap { $0.restartReason(toBecome: after) } ?? "settings changed")"
            } ?? "removed from the configuration by a reload"
            if let state = sources[name]?.state, let lane = state.lane {
                // Running: it drains first, and what replaces it opens after its source_down.
                if case .up = state { actions.append(.removeLane(lane)) }
                sources[name]?.state = .retiring(lane: lane, replacement: replacement, reason: reason)
            } else {
                sources[name] = nil
                if let replacement { actions.append(start(replacement, now: now)) }
            }
        }
        return actions
    }
}
