import HTTP
import Sink

/// The daemon's one way out: every record it sends (detections, source_up, source_down, heartbeat, reload) passes
/// through `publish`, in the order subscribers receive it (`hello` and `lag` are per subscriber: the socket writes
/// those). Detections come from the ordered sink, under its lock and in order per source; the others under the
/// service's supervision lock. So whatever hooks in here (tracking, MQTT, HTTP) sees each source's records in order,
/// must return quickly, and must not call back into the service.
final class Outlet: Sendable {
    private let server: SocketServer
    private let http: HTTPServer?

    init(server: SocketServer, http: HTTPServer? = nil) {
        self.server = server
        self.http = http
    }

    func publish(_ record: OutgoingRecord) {
        switch record {
        case .detections(let detections):
            server.broadcast(detections.jsonLine())
            http?.record(detections)
        case .written(let line): server.broadcast(line)
        }
    }
}

/// A record on its way out: detections, or one of the service's records already written as a JSON line.
enum OutgoingRecord {
    case detections(DetectionRecord)
    case written(String)
}
