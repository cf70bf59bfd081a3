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
/// right before its `source_down`.
final class Outlet: Sendable {
    private let server: SocketServer
    private let tracking: TrackingStage

    init(server: SocketServer, tracking: TrackingStage) {
        self.server = server
        self.tracking = tracking
    }

    /// `endingTracks`: for a `source_down`, why its source's open tracks end (they do, right before it).
    func publish(_ record: Record, endingTracks: TrackEndReason? = nil) {
        switch record {
        case .detections(let detections):
            let (tracked, events) = tracking.process(detections)
            for event in events { server.broadcast(event.record.jsonLine()) }
            server.broadcast(Record.detections(tracked).jsonLine())
        case .sourceDown(let down):
            if let endingTracks {
                for event in tracking.end(source: down.source, reason: endingTracks) { server.broadcast(event.record.jsonLine()) }
            }
            server.broadcast(record.jsonLine())
        default:
            server.broadcast(record.jsonLine())
        }
    }

    /// New tracking settings (a reload); see `TrackingStage.configure`.
    func configureTracking(_ config: DaemonConfig) {
        tracking.configure(defaults: nil, sources: config.trackingBySource)
    }

    /// The daemon is stopping and its last records are out: every open track ends.
    func shutdown() {
        for event in tracking.endAll(reason: .shutdown) { server.broadcast(event.record.jsonLine()) }
    }
}
