import Foundation
import Prometheus
import Sink
import Synchronization

/// The daemon's Prometheus metrics (docs/HTTP.md): counters fed by every detection record as it leaves the
/// ordered sink, gauges read from the daemon's state when /metrics is scraped.
public final class DaemonMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()

    /// Handles of one source's series, made once (the registry's lookup takes a lock).
    private struct SourceSeries {
        let captured, detected, droppedQueue: Counter
        let inference, latency: ValueHistogram
        var detections: [String: Counter] = [:]
        var lastFrame: Int?
    }
    private let series = Mutex<[String: SourceSeries]>([:])
    /// The CPU time already added to process_cpu_seconds_total, a counter that /proc's reading moves forward.
    private let cpuCounted = Mutex<Double>(0)

    private static let latencyBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    public init() {}

    private static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "sightline", metricName: metric, unitName: unit, helpText: help)
    }

    private func makeSeries(_ source: String) -> SourceSeries {
        let labels = [("source", source)]
        return SourceSeries(
            captured: registry.makeCounter(descriptor: Self.name("frames_captured", "total", "Frames the source decoded (detected or dropped)."), labels: labels),
            detected: registry.makeCounter(descriptor: Self.name("frames_detected", "total", "Frames detected: one detections record each."), labels: labels),
            droppedQueue: registry.makeCounter(descriptor: Self.name("frames_dropped", "total", "Frames dropped before detection, by reason."),
                                               labels: labels + [("reason", "queue_full")]),
            inference: registry.makeValueHistogram(descriptor: Self.name("inference", "seconds", "Time the detector spent on a frame."),
                                                   labels: labels, buckets: Self.latencyBuckets),
            latency: registry.makeValueHistogram(descriptor: Self.name("capture_to_emit", "seconds", "From capture to the record leaving the daemon."),
                                                 labels: labels, buckets: Self.latencyBuckets))
    }

    /// Counts one detections record.
    public func record(_ record: DetectionRecord) {
        series.withLock { all in
            var s = all[record.source] ?? makeSeries(record.source)
            // `frame` counts the frames the source decoded; it starts again at 0 when the source is reopened.
            let decoded = s.lastFrame.map { record.frame > $0 ? record.frame - $0 : record.frame + 1 } ?? record.frame + 1
            s.lastFrame = record.frame
            s.captured.increment(by: Int64(decoded))
            s.detected.increment()
            if record.dropped > 0 { s.droppedQueue.increment(by: Int64(record.dropped)) }
            s.inference.record(record.inferMs / 1000)
            s.latency.record(record.latencyMs / 1000)
            for detection in record.detections {
                if s.detections[detection.label] == nil {
                    s.detections[detection.label] = registry.makeCounter(
                        descriptor: Self.name("detections", "total", "Objects detected, by label."),
                        labels: [("source", record.source), ("label", detection.label)])
                }
                s.detections[detection.label]?.increment()
            }
            all[record.source] = s
        }
    }

    /// What the socket server reports about its subscribers.
    public struct Subscribers: Sendable {
        public var connected: Int
        public var disconnectedStuck: Int
        public var refusedOverLimit: Int
        public init(connected: Int, disconnectedStuck: Int, refusedOverLimit: Int) {
            (self.connected, self.disconnectedStuck, self.refusedOverLimit) = (connected, disconnectedStuck, refusedOverLimit)
        }
    }

    /// The exposition text, with the gauges set from the state passed in.
    public func render(sources: [SourceStatus], subscribers: Subscribers, streamClients: Int) -> [UInt8] {
        for source in sources {
            let labels = [("source", source.name)]
            registry.makeGauge(descriptor: Self.name("source_up", "", "1 while the source is open and capturing."), labels: labels)
                .set(to: source.state == .up ? 1 : 0)
            registry.makeGauge(descriptor: Self.name("source_reconnects", "", "Times the source was opened again after going down."), labels: labels)
                .set(to: Double(source.reconnects))
        }
        registry.makeGauge(descriptor: Self.name("subscribers", "", "Subscribers connected to the socket.")).set(to: Double(subscribers.connected))
        registry.makeGauge(descriptor: Self.name("subscribers_disconnected_stuck", "", "Subscribers disconnected for not reading."))
            .set(to: Double(subscribers.disconnectedStuck))
        registry.makeGauge(descriptor: Self.name("subscribers_refused", "", "Subscribers refused beyond socket.max_subscribers."))
            .set(to: Double(subscribers.refusedOverLimit))
        registry.makeGauge(descriptor: Self.name("http_stream_clients", "", "stream.mjpeg clients being served.")).set(to: Double(streamClients))
        let process = ProcessUsage.current()
        let cpu = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "process", metricName: "cpu_seconds", unitName: "total",
                                                                        helpText: "User and system CPU time of the daemon."))
        cpuCounted.withLock { counted in
            if process.cpuSeconds > counted {
                cpu.increment(by: process.cpuSeconds - counted)
                counted = process.cpuSeconds
            }
        }
        registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "process", metricName: "resident_memory", unitName: "bytes",
                                                            helpText: "Resident set size of the daemon."))
            .set(to: Double(process.residentBytes))
        return registry.emitToBuffer()
    }
}

/// CPU time and resident memory of this process, from /proc.
enum ProcessUsage {
    static func current() -> (cpuSeconds: Double, residentBytes: Int) {
        var cpu = 0.0, resident = 0
        if let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8), let end = stat.lastIndex(of: ")") {
            // Fields after the command name: state is field 3, utime 14 and stime 15.
            let fields = stat[stat.index(after: end)...].split(separator: " ")
            if fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) {
                cpu = (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
            }
        }
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
            let fields = statm.split(separator: " ")
            if fields.count > 1, let pages = Int(fields[1]) { resident = pages * sysconf(Int32(_SC_PAGESIZE)) }
        }
        return (cpu, resident)
    }
}
