/// What a path must be for a Unix socket to be created there, as far as its text tells: the subscriber socket
/// (`socket.path`, `run --socket`) and the HTTP server's (`http.listen: unix:PATH`) are checked alike.
public enum UnixSocketPath {
    /// `sun_path` holds 108 bytes, the last a NUL.
    public static let maxBytes = 107

    /// Why `path` cannot name a socket file, e.g. "ends with \"/\" ...", or nil.
    public static func problem(_ path: String) -> String? {
        if path.isEmpty { return "is empty" }
        if path.utf8.contains(0) { return "contains a NUL byte" }
        if path.utf8.count > maxBytes { return "is \(path.utf8.count) bytes long; a socket path may have at most \(maxBytes)" }
        if path.hasSuffix("/") { return "ends with \"/\", which names a directory: name the socket file, e.g. \(path)sightline.sock" }
        if let last = path.split(separator: "/").last, last == "." || last == ".." {
            return "ends with \"\(last)\", which names a directory: name the socket file, e.g. \(path)/sightline.sock"
        }
        return nil
    }
}
