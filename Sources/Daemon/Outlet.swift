import Sink
import Values

/// The daemon's one way out: every record it sends (detections, source_up, source_down, heartbeat, reload) passes
/// through `publish`, in the order subscribers receive it (`hello` and `lag` are per subscriber: the socket writes
/// those). Detections come from the ordered sink, under its lock and in order per source; the others under the
/// service's supervision lock. So whatever hooks in here (tracking, MQTT, HTTP) sees each source's records in order,
/// must return quickly, and must not call back into the service.
final class Outlet: Sendable {
    private let server: SocketServer

    init(server: SocketServer) {
        self.server = server
    }

    func publish(_ record: Record) {
        server.broadcast(record.jsonLine())
    }
}
