import HTTP
import Sink
import Tracking
import Values

/// The daemon's one way out: every record it sends (detections, source_up, source_down, heartbeat, reload) passes
/// through `publish`, in the order subscribers receive it (`hello` and `lag` are per subscriber: the socket writes
/// those). Detections come from the ordered sink, under its lock and in order per source; the others under the
/// service's supervision lock. So whatever hooks in here (tracking, MQTT, HTTP) sees each source's records in order,
/// must return quickly, and must not call back into the service.
///
/// Tracking hooks in here: a frame's events go out right before its detections, and a source's open tracks end
/// right before its `source_down`. Everything that goes to the socket also goes to MQTT (when configured).
final class Outlet: Sendable {
    private let server: SocketServer
    private let tracking: TrackingStage
    private let mqtt: MQTTOutput
    private let http: HTTPServer?

    init(server: SocketServer, tracking: TrackingStage, mqtt: MQTTOutput, http: HTTPServer? = nil) {
        self.server = server
        self.tracking = tracking
        self.mqtt = mqtt
        self.http = http
    }

    /// `endingTracks`: for a `source_down`, why its source's open tracks end (they do, right before it).
    func publish(_ record: Record, endingTracks: TrackEndReason? = nil) {
        switch record {
        case .detections(let detections):
            let (tracked, events) = tracking.process(detections)
            // HTTP first: a subscriber asking for an event's snapshot as soon as it has the object_start finds the event.
            http?.record(tracked, events: events)
            for event in events { send(event) }
            server.broadcast(Record.detections(tracked).jsonLine())
            mqtt.forward(tracked)
        case .sourceDown(let down) where endingTracks != nil:
            let events = tracking.end(source: down.source, reason: endingTracks ?? .sourceDown)
            for event in events { send(event) }
            send(record.jsonLine())
            http?.record(events: events)
        default:
            send(record.jsonLine())
        }
    }

    private func send(_ event: TrackEvent) {
        let line = event.record.jsonLine()
        server.broadcast(line)
        mqtt.forward(event, line: line)
    }

    private func send(_ line: String) {
        server.broadcast(line)
        mqtt.forward(line: line)
    }

    /// New tracking settings (a reload); see `TrackingStage.configure`.
    func configureTracking(_ config: DaemonConfig) {
        tracking.configure(defaults: nil, sources: config.trackingBySource)
    }

    /// The daemon is stopping and its last records are out: every open track ends.
    func shutdown() {
        let events = tracking.endAll(reason: .shutdown)
        for event in events { send(event) }
        http?.record(events: events)
    }
}
