import Values

extension DaemonConfig {
    /// What replacing `self` by `new` changes, split into what a reload applies (`changed`, sources `added`,
    /// `removed` and `restarted`) and what waits for a restart of the daemon (`needsRestart`).
    public func changes(to new: DaemonConfig) -> ReloadChanges {
        var changes = ReloadChanges()
        if new.thresholds.defaultScore != thresholds.defaultScore { changes.changed.append("threshold") }
        if new.thresholds.perLabel != thresholds.perLabel { changes.changed.append("thresholds") }
        if new.tracking != tracking { changes.changed.append("tracking") }
        if new.heartbeat != heartbeat { changes.changed.append("heartbeat_seconds") }
        if new.reconnectMax != reconnectMax { changes.changed.append("reconnect_max_seconds") }
        if new.mqtt != mqtt { changes.changed.append("mqtt") }
        if new.model != model { changes.needsRestart.append("model") }
        if new.labels != labels { changes.needsRestart.append("labels") }
        if new.precision != precision { changes.needsRestart.append("precision") }
        if new.workers != workers { changes.needsRestart.append("workers") }
        if new.socket.path != socket.path { changes.needsRestart.append("socket.path") }
        if new.socket.mode != socket.mode { changes.needsRestart.append("socket.mode") }
        if new.socket.group != socket.group { changes.needsRestart.append("socket.group") }
        if new.socket.queueLimit != socket.queueLimit { changes.needsRestart.append("socket.queue_limit") }
        if new.socket.maxSubscribers != socket.maxSubscribers { changes.needsRestart.append("socket.max_subscribers") }
        if new.socket.stuckAfter != socket.stuckAfter { changes.needsRestart.append("socket.stuck_seconds") }
        if new.http != http { changes.needsRestart.append("http") }

        let old = Dictionary(sources.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let names = Set(new.sources.map(\.name))
        changes.removed = sources.map(\.name).filter { !names.contains($0) }
        for source in new.sources {
            guard let before = old[source.name] else {
                changes.added.append(source.name)
                continue
            }
            changes.changed += before.changedKeys(comparedTo: source).map { "sources.\(source.name).\($0)" }
            if let reason = before.restartReason(toBecome: source) { changes.restarted.append(.init(source: source.name, reason: reason)) }
        }
        return changes
    }
}

extension SourceOptions {
    /// The keys, as the config file spells them, whose values differ in `other`.
    public func changedKeys(comparedTo other: SourceOptions) -> [String] {
        var keys: [String] = []
        if input != other.input { keys.append("input") }
        if policy != other.policy { keys.append("policy") }
        if fpsLimit != other.fpsLimit { keys.append("fps_limit") }
        if realtime != other.realtime { keys.append("realtime") }
        if realtimeFPS != other.realtimeFPS { keys.append("realtime_fps") }
        if ringCapacity != other.ringCapacity { keys.append("ring_capacity") }
        if ioTimeout != other.ioTimeout { keys.append("io_timeout") }
        if captureWidth != other.captureWidth { keys.append("width") }
        if captureHeight != other.captureHeight { keys.append("height") }
        if captureFPS != other.captureFPS { keys.append("capture_fps") }
        if thresholds.defaultScore != other.thresholds.defaultScore { keys.append("threshold") }
        if thresholds.perLabel != other.thresholds.perLabel { keys.append("thresholds") }
        if tracking != other.tracking { keys.append("tracking") }
        // A setting this list does not know yet still restarts the source; say so rather than give no reason.
        if keys.isEmpty && needsRestart(toBecome: other) { keys.append("settings") }
        return keys
    }

    /// Why going to `other` restarts the source (`input, fps_limit changed`), or nil if it does not.
    public func restartReason(toBecome other: SourceOptions) -> String? {
        guard needsRestart(toBecome: other) else { return nil }
        let keys = changedKeys(comparedTo: other).filter { !["threshold", "thresholds", "tracking"].contains($0) }
        return "\(keys.joined(separator: ", ")) changed"
    }
}
