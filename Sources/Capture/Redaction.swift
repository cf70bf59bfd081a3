/// Camera URLs may carry credentials (`rtsp://admin:hunter2@cam/stream`). The password is needed to open the
/// stream and nowhere else: every text that leaves the process (records, logs, error messages) goes through here.
public enum Redaction {
    public static let mask = "***"

    /// `text` with the password of every URL in it replaced by `***`. The user name stays, to tell accounts apart.
    public static func redactingPasswords(_ text: String) -> String {
        guard text.contains("://") else { return text }
        let bytes = Array(text.utf8)
        var result: [UInt8] = []
        result.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            guard let authorityStart = schemeSeparatorEnd(bytes, from: index) else {
                result.append(contentsOf: bytes[index...])
                break
            }
            result.append(contentsOf: bytes[index..<authorityStart])
            var authorityEnd = authorityStart
            while authorityEnd < bytes.count, !endsAuthority(bytes[authorityEnd]) { authorityEnd += 1 }
            let authority = bytes[authorityStart..<authorityEnd]
            // The host follows the last '@'; the password sits between the first ':' and that '@'.
            if let at = authority.lastIndex(of: UInt8(ascii: "@")),
               let colon = authority[..<at].firstIndex(of: UInt8(ascii: ":")) {
                result.append(contentsOf: bytes[authorityStart...colon])
                result.append(contentsOf: mask.utf8)
                result.append(contentsOf: bytes[at..<authorityEnd])
            } else {
                result.append(contentsOf: authority)
            }
            index = authorityEnd
        }
        return String(decoding: result, as: UTF8.self)
    }

    /// The index just past the next "://" at or after `start`.
    private static func schemeSeparatorEnd(_ bytes: [UInt8], from start: Int) -> Int? {
        var i = start
        while i + 2 < bytes.count {
            if bytes[i] == UInt8(ascii: ":"), bytes[i + 1] == UInt8(ascii: "/"), bytes[i + 2] == UInt8(ascii: "/") { return i + 3 }
            i += 1
        }
        return nil
    }

    /// Where a URL's authority (userinfo@host:port) ends: its path, query or fragment, or the end of the URL in prose.
    private static func endsAuthority(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "/"), UInt8(ascii: "?"), UInt8(ascii: "#"), UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"),
             UInt8(ascii: "\r"), UInt8(ascii: "\""), UInt8(ascii: "'"), UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "`"):
            return true
        default:
            return false
        }
    }
}
